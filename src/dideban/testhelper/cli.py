"""`dideban testhelper`: serve the web-connectivity control protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def testhelper(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on")] = 8090,
    lab: Annotated[
        str | None, typer.Option("--lab", help="Serve a running lab (its control view) by name")
    ] = None,
    lab_state: Annotated[
        Path | None, typer.Option("--lab-state", help="A running lab's state file (lab.json)")
    ] = None,
    max_in_flight: Annotated[
        int, typer.Option(min=1, help="Control requests served at once; more get 503")
    ] = 64,
) -> None:
    """Serve OONI's web-connectivity test-helper protocol (POST / control, GET / health)."""
    import uvicorn

    from dideban.model.labnet import LabNetwork
    from dideban.netx import make_network
    from dideban.testhelper import create_app

    if lab is not None and lab_state is not None:
        typer.echo("dideban testhelper: give --lab or --lab-state, not both", err=True)
        raise typer.Exit(2)
    network_lab: LabNetwork | None = None
    if lab_state is not None:
        try:
            network_lab = LabNetwork.from_json(lab_state.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            typer.echo(f"dideban testhelper: {lab_state}: not a lab state file: {exc}", err=True)
            raise typer.Exit(2) from None
    elif lab is not None:
        from dideban.lab import find_running_lab

        network_lab = find_running_lab(lab)
        if network_lab is None:
            typer.echo(f"dideban testhelper: no running lab called {lab!r}", err=True)
            raise typer.Exit(2)
    timeouts = dict(network_lab.timeouts) if network_lab is not None else None
    network = make_network(network_lab, "control", timeouts=timeouts)
    app = create_app(network, max_in_flight=max_in_flight)
    mode = f"lab {network_lab.name}" if network_lab is not None else "public destinations only"
    typer.echo(f"Dideban test helper on http://{host}:{port}/ ({mode})")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command("testhelper")(testhelper)
