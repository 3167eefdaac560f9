"""`dideban serve`: the open data API and the dashboard over a store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve(
    db: Annotated[Path, typer.Option("--db", help="The store (DuckDB file) to serve, read-only")],
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on")] = 8080,
    query_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds before a query is interrupted")
    ] = 5.0,
    keep_open: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Seconds one read-only connection may serve a burst of queries before it is "
            "closed to let `dideban ingest` write (0: one connection per query)",
        ),
    ] = 1.0,
    hold_connection: Annotated[
        bool,
        typer.Option(help="Never close the connection (an archive; blocks `dideban ingest`)"),
    ] = False,
    threads: Annotated[int, typer.Option(min=0, help="DuckDB threads (0: one per core)")] = 0,
    max_in_flight: Annotated[
        int, typer.Option(min=1, help="Requests served at once; more get 503 overloaded")
    ] = 32,
) -> None:
    """Serve the API (/api/v1) and the dashboard (/) over a store, read-only."""
    import uvicorn

    from dideban.api.app import create_app
    from dideban.api.reader import StoreUnavailable

    try:
        app = create_app(
            db,
            query_timeout=query_timeout,
            hold_connection=hold_connection,
            keep_open=keep_open,
            threads=threads or None,
            max_in_flight=max_in_flight,
        )
    except StoreUnavailable as exc:
        typer.echo(f"dideban serve: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"Dideban dashboard on http://{host}:{port}/ (API at /api/v1, store {db})")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
