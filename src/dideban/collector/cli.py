"""`dideban collector`: serve the collector on uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dideban.collector.app import DEFAULT_MAX_BODY, create_app
from dideban.collector.storage import DEFAULT_SEAL_AFTER


def collector(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Where raw measurements go.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8091,
    test_helper: Annotated[
        list[str] | None,
        typer.Option("--test-helper", help="A web_connectivity test helper URL (repeatable)."),
    ] = None,
    max_body_bytes: Annotated[
        int, typer.Option(help="Largest accepted request body, also once decompressed.")
    ] = DEFAULT_MAX_BODY,
    seal_after: Annotated[
        float, typer.Option(help="Seconds after which an open segment is sealed into raw/.")
    ] = DEFAULT_SEAL_AFTER,
    no_fsync: Annotated[
        bool,
        typer.Option(
            "--no-fsync",
            hidden=True,
            help="Skip fsync (benchmark baseline only: acknowledged data can be lost).",
        ),
    ] = False,
    test_lists: Annotated[
        Path | None,
        typer.Option(help="Directory of Citizen Lab CSV lists (default: the bundled copy)."),
    ] = None,
) -> None:
    """Run the collector: OONI's probe-services submission API with durable raw storage."""
    import uvicorn

    app = create_app(
        data_dir,
        test_helpers=test_helper or [],
        max_body_bytes=max_body_bytes,
        seal_after=seal_after,
        test_lists_dir=test_lists,
        durable=not no_fsync,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def register(app: typer.Typer) -> None:
    app.command("collector")(collector)
