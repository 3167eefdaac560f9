"""`dideban demo`: the whole system, end to end, on one machine and with no Internet.

The steps are data (`DEMO_STEPS`): each takes the shared `DemoState` and may register what it
started on the state's exit stack, so everything stops in reverse order however the demo ends.

  1. the censorship lab (`iran` scenario) and a control test helper in lab mode;
  2. a collector on loopback, storing under `<workdir>/collector`;
  3. the probe runs web_connectivity over every lab site and submits to the collector;
  4. the results table;
  5. the collector stops (sealing its raw files) and `ingest` loads them into the store;
  6. the verdicts, as the pipeline recomputed them from the raw evidence;
  7. the API and dashboard over the store, until Ctrl-C (`--no-serve` skips it).

This module sits above every part, like the `cli.py` modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dideban.probe import cli as probe_cli
from dideban.probe.runner import MeasurementResult

console = Console(stderr=True)
out = Console()


@dataclass
class DemoState:
    scenario: str
    workdir: Path
    stack: contextlib.AsyncExitStack
    serve: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    serve_seconds: float | None = None
    lab: probe_cli.LabRun | None = None
    collector_url: str = ""
    collector_stop: Callable[[], Awaitable[None]] | None = None
    results: list[MeasurementResult] = field(default_factory=list)
    seconds: float = 0.0
    ingested: int = 0
    blocking_types: Counter[str] = field(default_factory=Counter)
    dashboard_url: str = ""

    @property
    def output(self) -> Path:
        return self.workdir / "measurements.jsonl"

    @property
    def collector_dir(self) -> Path:
        return self.workdir / "collector"

    @property
    def db(self) -> Path:
        return self.workdir / "dideban.duckdb"


@dataclass(frozen=True)
class DemoStep:
    title: str
    run: Callable[[DemoState], Awaitable[None]]


async def step_lab(state: DemoState) -> None:
    state.lab = await state.stack.enter_async_context(probe_cli.lab_session(state.scenario))
    net = state.lab.network
    console.print(
        f"lab {net.name!r}: {len(state.lab.targets)} sites, probe in {net.probe_cc} "
        f"{net.probe_asn} ({net.probe_network_name}); test helper {state.lab.test_helper_url}"
    )


async def step_collector(state: DemoState) -> None:
    from dideban.collector.process import serve_collector

    state.collector_dir.mkdir(parents=True, exist_ok=True)
    context = serve_collector(state.collector_dir)
    served = await context.__aenter__()
    stopped = False

    async def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            await context.__aexit__(None, None, None)

    state.stack.push_async_callback(stop)
    state.collector_url = served.url
    state.collector_stop = stop
    console.print(f"collector {served.url}, raw data under {state.collector_dir}")


async def step_probe(state: DemoState) -> None:
    assert state.lab is not None
    t0 = time.monotonic()
    run = probe_cli.WebsitesRun(
        state.lab.targets,
        state.output,
        state.lab.network,
        state.lab.test_helper_url,
        probe_cli.LAB_CONCURRENCY,
        collector=state.collector_url or None,
    )
    state.results = await probe_cli.run_websites(run)
    state.seconds = time.monotonic() - t0


async def step_table(state: DemoState) -> None:
    out.print(probe_cli.results_table(state.results))
    console.print(probe_cli.summary_line(state.results, state.seconds))
    console.print(f"measurements (OONI format, one per line) also written to {state.output}")


async def step_ingest(state: DemoState) -> None:
    from dideban.collector.storage import sealed_files
    from dideban.ingest import ingest
    from dideban.pipeline.fingerprints import FingerprintDB

    if state.collector_stop is not None:
        await state.collector_stop()  # seals the open segments
    sealed = sealed_files(state.collector_dir)
    fpdb = FingerprintDB.load()
    report = await asyncio.to_thread(ingest, [state.collector_dir], state.db, fpdb)
    state.ingested = report.measurements
    console.print(
        f"{len(sealed)} sealed raw file(s); ingested {report.measurements} measurements "
        f"into {state.db} ({len(report.errors)} unreadable)"
    )
    for err in report.errors[:5]:
        console.print(f"[yellow]unreadable:[/yellow] {err}")


async def step_verdicts(state: DemoState) -> None:
    from dideban.store import Store

    with Store.open(state.db, read_only=True) as store:
        rows: list[tuple[Any, ...]] = store.conn.execute(
            "SELECT input, blocking_type, confirmed, anomaly, fingerprints, probe_blocking "
            "FROM verdicts ORDER BY blocking_type NULLS LAST, input"
        ).fetchall()
    table = Table(title="pipeline verdicts (recomputed from the raw evidence)")
    for col in ("site", "blocking type", "confirmed", "fingerprints", "probe said"):
        table.add_column(col, overflow="fold")
    for url, btype, confirmed, anomaly, fps, probe_said in rows:
        state.blocking_types[btype or ("anomaly" if anomaly else "ok")] += 1
        table.add_row(
            str(url),
            btype or ("anomaly" if anomaly else "-"),
            "yes" if confirmed else "",
            ", ".join(fps or []),
            str(probe_said) if probe_said is not None else "",
            style="red" if btype else None,
        )
    out.print(table)
    console.print(
        "verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(state.blocking_types.items()))
    )


async def step_serve(state: DemoState) -> None:
    from dideban.api.server import start_server

    if not state.serve:
        console.print(f"not serving (--no-serve); to browse: dideban serve --db {state.db}")
        return
    server = await asyncio.to_thread(start_server, state.db, host=state.host, port=state.port)

    async def stop_server() -> None:
        await asyncio.to_thread(server.stop)

    state.stack.push_async_callback(stop_server)
    state.dashboard_url = server.url + "/"
    out.print(f"[bold green]Dashboard:[/bold green] {state.dashboard_url}  (Ctrl-C to stop)")
    # Ctrl-C / SIGTERM end the wait, and the exit stack then stops everything in order
    # (rather than a KeyboardInterrupt cancelling whatever is running at that moment).
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), timeout=state.serve_seconds)
    except TimeoutError:
        pass
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    console.print("stopping")


DEMO_STEPS: list[DemoStep] = [
    DemoStep("Start the censorship lab and the control test helper", step_lab),
    DemoStep("Start the collector", step_collector),
    DemoStep("Run web_connectivity over every site, submitting to the collector", step_probe),
    DemoStep("Show the probe's results", step_table),
    DemoStep("Seal the collector's raw files and ingest them into the store", step_ingest),
    DemoStep("Show the pipeline's verdicts", step_verdicts),
    DemoStep("Serve the API and dashboard", step_serve),
]


async def run_demo(state_args: dict[str, Any], steps: list[DemoStep] | None = None) -> DemoState:
    async with contextlib.AsyncExitStack() as stack:
        state = DemoState(stack=stack, **state_args)
        chosen = DEMO_STEPS if steps is None else steps
        for number, step in enumerate(chosen, start=1):
            console.rule(f"[bold]{number}/{len(chosen)} {step.title}")
            await step.run(state)
        return state


def demo(
    scenario: Annotated[str, typer.Option(help="Lab scenario name or YAML file.")] = "iran",
    workdir: Annotated[
        Path, typer.Option(help="Where measurements, raw collector data and the store go.")
    ] = Path("dideban-demo"),
    host: Annotated[str, typer.Option(help="Dashboard address (loopback).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Dashboard port (0: any).")] = 8080,
    serve: Annotated[bool, typer.Option(help="Serve the dashboard at the end.")] = True,
    serve_seconds: Annotated[
        float | None, typer.Option(help="Stop serving after this many seconds.")
    ] = None,
) -> None:
    """Run the whole system on an emulated censored network: lab, test helper, collector,
    probe, ingest, verdicts and dashboard."""
    probe_cli._fresh_consoles()
    if workdir.exists() and not workdir.is_dir():
        console.print(f"[red]error:[/red] --workdir {workdir} is not a directory")
        raise typer.Exit(2)
    if (workdir / "dideban.duckdb").exists() or (workdir / "collector").exists():
        console.print(
            f"[red]error:[/red] {workdir} holds an earlier demo; remove it or give --workdir"
        )
        raise typer.Exit(2)
    workdir.mkdir(parents=True, exist_ok=True)
    args = {
        "scenario": scenario,
        "workdir": workdir,
        "serve": serve,
        "host": host,
        "port": port,
        "serve_seconds": serve_seconds,
    }
    try:
        asyncio.run(run_demo(args))
    except (probe_cli.ProbeError, OSError, RuntimeError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        console.print("stopped")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
