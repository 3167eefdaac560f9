"""`dideban run websites`, and the lab/helper/collector sessions that `dideban demo` reuses.

This module sits at the top of the stack: it may bring up the lab (`dideban.lab`) and the
control test helper (`dideban.testhelper`) for a self-contained lab run, which the probe's own
modules never import.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dideban import SOFTWARE_NAME, __version__
from dideban.model.labnet import LabNetwork, is_loopback
from dideban.model.measurement import ProbeNetwork
from dideban.nettests import get as get_nettest
from dideban.nettests.web_connectivity import TEST_NAME, WebConnectivityContext
from dideban.probe.envelope import RunInfo, default_annotations
from dideban.probe.privacy import scrubber
from dideban.probe.runner import JsonlWriter, MeasurementResult, Sink, run_targets
from dideban.probe.testlists import Target, TestListError, gather_targets

console = Console(stderr=True)
out = Console()


def _fresh_consoles() -> None:
    """New consoles per command, so that they see the terminal (COLUMNS) of this call."""
    global console, out
    console = Console(stderr=True)
    out = Console()


run_app = typer.Typer(help="Run network tests.", no_args_is_help=True)

DEFAULT_CONCURRENCY = 32
# In the lab, the probe and the lab's servers (resolvers, censor, sites, test helper) share one
# event loop: the probe's timeouts (2 s) also count the lab's work. At 64 sites at once, a
# starved CPU (two or three busy processes a core) turned 20-30 of the iran scenario's 43 DNS
# lookups into timeouts, i.e. `dns` blocking the scenario does not apply; at 16, none (the
# run takes ~1 s longer: 5.3 s against 4.3 s on an idle machine). Test:
# test_pipeline_lab.py (busy machine).
LAB_CONCURRENCY = 16


class ProbeError(Exception):
    """A run that cannot start: the message says why; nothing was written."""


# --- lab and test helper ------------------------------------------------------------------


@dataclass
class LabRun:
    network: LabNetwork
    test_helper_url: str
    targets: list[Target] = field(default_factory=list)
    started_lab: bool = False


def _lab_targets(lab: str, network: LabNetwork) -> list[Target]:
    from dideban.lab.scenario import ScenarioError, load_scenario

    for name in (lab, network.name):
        try:
            scenario = load_scenario(name)
        except ScenarioError:
            continue
        return [Target(s.url, s.category_code) for s in scenario.sites]
    return []


def _helper_server_class() -> type[Any]:
    import uvicorn

    class HelperServer(uvicorn.Server):
        # Signals stay with the caller (the CLI's Ctrl-C stops the whole run, not the helper).
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return HelperServer


@contextlib.asynccontextmanager
async def serve_test_helper(network: LabNetwork) -> AsyncIterator[str]:
    """The control test helper in lab mode (control view) on 127.0.0.1:<ephemeral>."""
    import uvicorn

    from dideban.netx import make_network
    from dideban.testhelper import create_app

    app = create_app(make_network(network, "control", timeouts=dict(network.timeouts)))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = _helper_server_class()(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if not server.started:
            if task.done():
                task.result()
            raise ProbeError("the test helper did not start within 5 s")
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        # wait_for cancels a helper that does not stop in time.
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, timeout=5)
        sock.close()


def read_lab_state(path: Path) -> LabNetwork:
    """A running lab's published state (`LabNetwork` JSON), e.g. the netns lab's lab.json."""
    try:
        return LabNetwork.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProbeError(f"{path}: no such lab state file (is the lab up?)") from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ProbeError(f"{path}: not a lab state file: {exc}") from exc


@contextlib.asynccontextmanager
async def lab_session(lab: str | None, state: Path | None = None) -> AsyncIterator[LabRun]:
    """A running lab and a test helper for it. The lab is the one whose state file is given,
    or one `dideban lab up` started (reused), or else started here; whatever this function
    started is stopped afterwards."""
    async with contextlib.AsyncExitStack() as stack:
        network: LabNetwork | None = None
        started = False
        if state is not None:
            network = read_lab_state(state)
        else:
            assert lab is not None
            from dideban.lab import UserspaceLab, find_running_lab
            from dideban.lab.scenario import ScenarioError, load_scenario

            if not Path(lab).exists():
                network = find_running_lab(lab)
            if network is None:
                try:
                    scenario = load_scenario(lab)
                except ScenarioError as exc:
                    raise ProbeError(str(exc)) from exc
                running = await stack.enter_async_context(UserspaceLab(scenario))
                network = running.network
                started = True
        helper = network.test_helper_url
        if not helper:
            helper = await stack.enter_async_context(serve_test_helper(network))
        yield LabRun(network, helper, _lab_targets(lab or network.name, network), started)


# --- the run ------------------------------------------------------------------------------


def probe_addresses(network: LabNetwork | None) -> list[str]:
    """The addresses to scrub from every measurement: this machine's own interface addresses
    (on a tethered phone, a VPS or IPv6 they are public) and, in a lab, the address the lab's
    sites see as the probe's public address."""
    from dideban.netx.local import local_addresses

    lab = [network.probe_public_ip] if network is not None and network.probe_public_ip else []
    return lab + local_addresses()


def web_context(network: LabNetwork | None, test_helper_url: str) -> WebConnectivityContext:
    from dideban.nettests.web_connectivity.measure_adapter import measurer_factory
    from dideban.netx import make_network

    if network is not None:
        net = make_network(network, "probe", timeouts=dict(network.timeouts))
        resolver = network.probe_view.resolver.rsplit(":", 1)[0] or None
    else:
        net = make_network(None, "probe")
        resolver = None
    return WebConnectivityContext(
        new_measurer=measurer_factory(net),
        test_helper_url=test_helper_url,
        client_resolver=resolver,
    )


def probe_network(network: LabNetwork | None) -> ProbeNetwork:
    if network is None:
        return ProbeNetwork()
    resolver_ip = network.probe_view.resolver.rsplit(":", 1)[0]
    return ProbeNetwork(
        probe_cc=network.probe_cc,
        probe_asn=network.probe_asn,
        probe_network_name=network.probe_network_name,
        resolver_ip=resolver_ip,
        resolver_asn=network.probe_asn,
        resolver_network_name=network.probe_network_name,
    )


@dataclass
class CollectorSession:
    """The run's report at the collector, and what became of each submission."""

    report_id: str
    submit: Sink
    counts: dict[str, int] = field(default_factory=dict)


def check_in_request(info: RunInfo) -> dict[str, Any]:
    """OONI's check-in request: what the collector needs to choose URLs, nothing about the
    user beyond the network the measurement itself names."""
    return {
        "probe_cc": info.network.probe_cc,
        "probe_asn": info.network.probe_asn,
        "run_type": "manual",
        "charging": True,
        "on_wifi": True,
        "platform": str(info.annotations.get("platform", "linux")),
        "software_name": SOFTWARE_NAME,
        "software_version": __version__,
        "web_connectivity": {"category_codes": []},
    }


@contextlib.asynccontextmanager
async def collector_session(
    url: str, info: RunInfo, addresses: list[str]
) -> AsyncIterator[CollectorSession]:
    """Open a report at the collector; each measurement is then submitted as it completes
    (queued on disk when the collector cannot be reached: `dideban upload` sends them later).
    Closing the report also uploads what earlier runs left queued."""
    from dideban.probe.queue import default_queue_dir
    from dideban.probe.submit import Submitter

    submitter = Submitter(url, default_queue_dir(), probe_addresses=addresses)
    net = info.network
    answer = await submitter.check_in(check_in_request(info))
    if answer is not None:
        # The address the collector saw us at is scrubbed from the file too, not only from
        # what is submitted (`addresses` is the list the run's own scrubber reads).
        for seen in submitter.probe_addresses:
            if seen not in addresses and not is_loopback(seen):
                addresses.append(seen)
        offered = len(((answer.get("tests") or {}).get("web_connectivity") or {}).get("urls") or [])
        console.print(f"checked in at {url}: {offered} URLs offered for {net.probe_cc}")
    report_id = await submitter.open(
        info.test_name,
        info.test_version,
        net.probe_cc,
        net.probe_asn,
        SOFTWARE_NAME,
        __version__,
    )
    counts = {"uploaded": 0, "queued": 0, "rejected": 0}

    async def submit(measurement: dict[str, Any]) -> None:
        outcome = await submitter.submit(measurement)
        if outcome.measurement_uid is not None:
            counts["uploaded"] += 1
        elif outcome.queued:
            counts["queued"] += 1
        else:
            counts["rejected"] += 1
            console.print(f"[red]collector rejected {measurement.get('input')}: {outcome.error}")

    try:
        yield CollectorSession(report_id or "", submit, counts)
    finally:
        await submitter.close()


def results_table(results: list[MeasurementResult]) -> Table:
    table = Table(title="web_connectivity results", show_lines=False)
    table.add_column("site", overflow="fold", ratio=3)
    table.add_column("category")
    table.add_column("blocking", no_wrap=True)
    table.add_column("accessible")
    table.add_column("failure", overflow="fold", ratio=2)
    for r in results:
        blocking = r.blocking
        style = "green" if blocking is False and r.accessible else "red" if blocking else "yellow"
        table.add_row(
            r.target.url,
            r.target.category_code,
            "null" if blocking is None else str(blocking).lower(),
            "null" if r.accessible is None else str(r.accessible).lower(),
            r.failure or "",
            style=style,
        )
    return table


def summary_line(results: list[MeasurementResult], seconds: float) -> str:
    blocked = sum(1 for r in results if isinstance(r.blocking, str))
    ok = sum(1 for r in results if r.blocking is False and r.accessible)
    rate = len(results) / seconds if seconds > 0 else 0.0
    return (
        f"{len(results)} sites in {seconds:.1f} s ({rate:.1f} sites/s): "
        f"{blocked} blocked, {ok} accessible, {len(results) - blocked - ok} down or unknown"
    )


@dataclass
class WebsitesRun:
    targets: list[Target]
    output: Path
    network: LabNetwork | None
    test_helper_url: str
    concurrency: int
    collector: str | None = None
    show_progress: bool = True
    # Ramp-up between the start of two workers (see runner.run_targets).
    start_interval: float = 0.005


async def run_websites(run: WebsitesRun) -> list[MeasurementResult]:
    """Measure every target, streaming each scrubbed measurement to the output (and collector)."""
    nettest = get_nettest(TEST_NAME)
    ctx = web_context(run.network, run.test_helper_url)
    info = RunInfo(
        test_name=nettest.name,
        test_version=nettest.version,
        network=probe_network(run.network),
        test_start_time=dt.datetime.now(dt.UTC),
        test_helper_url=run.test_helper_url,
        annotations=default_annotations("lab" if run.network is not None else "unknown"),
    )
    addresses = probe_addresses(run.network)
    scrub = scrubber()

    def scrub_one(m: dict[str, Any]) -> dict[str, Any]:
        return scrub(m, addresses)

    writer = JsonlWriter(run.output)
    progress = Progress(
        TextColumn("[bold]web_connectivity"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
        console=console,
        disable=not run.show_progress,
        transient=False,
    )
    async with contextlib.AsyncExitStack() as stack:
        sinks: list[Sink] = [writer.write]
        collector: CollectorSession | None = None
        if run.collector:
            collector = await stack.enter_async_context(
                collector_session(run.collector, info, addresses)
            )
            # The file and the collector get the same measurement, report id included.
            info = dataclasses.replace(info, report_id=collector.report_id)
            sinks.append(collector.submit)
        try:
            writer.open()
        except OSError as exc:
            raise ProbeError(f"cannot write {run.output}: {exc}") from exc
        stack.callback(writer.close)
        with progress:
            task = progress.add_task("measuring", total=len(run.targets), last="")

            def advance(result: MeasurementResult) -> None:
                progress.update(task, advance=1, last=result.target.url)

            results = await run_targets(
                nettest,
                run.targets,
                ctx,
                info,
                scrub=scrub_one,
                sinks=sinks,
                concurrency=run.concurrency,
                on_result=advance,
                start_interval=run.start_interval,
            )
        if collector is not None:
            c = collector.counts
            console.print(
                f"collector {run.collector}: {c['uploaded']} uploaded, {c['queued']} queued "
                f"for `dideban upload`, {c['rejected']} rejected"
            )
    return results


async def _websites_async(
    lab: str | None,
    lab_state: Path | None,
    inputs: list[str],
    input_file: Path | None,
    output: Path,
    collector: str | None,
    test_helper: str | None,
    concurrency: int | None,
) -> tuple[list[MeasurementResult], float]:
    if lab is not None and lab_state is not None:
        raise ProbeError("give --lab or --lab-state, not both")
    if output.is_dir():
        raise ProbeError(f"--output {output} is a directory; give a file name")
    explicit = gather_targets(inputs, input_file) if (inputs or input_file) else None
    t0 = asyncio.get_running_loop().time()
    if lab is None and lab_state is None:
        if explicit is None:
            raise ProbeError("no inputs: give --input URL or --input-file FILE (or --lab NAME)")
        if not test_helper:
            raise ProbeError("--test-helper URL is required without --lab")
        run = WebsitesRun(explicit, output, None, test_helper, concurrency or DEFAULT_CONCURRENCY)
        run.collector = collector
        results = await run_websites(run)
    else:
        async with lab_session(lab, lab_state) as session:
            targets = explicit if explicit is not None else session.targets
            if not targets:
                raise ProbeError(f"lab {lab!r} has no scenario sites; give --input URL")
            helper = test_helper or session.test_helper_url
            run = WebsitesRun(
                targets, output, session.network, helper, concurrency or LAB_CONCURRENCY
            )
            run.collector = collector or session.network.collector_url or None
            results = await run_websites(run)
    return results, asyncio.get_running_loop().time() - t0


@run_app.command("websites")
def websites(
    lab: Annotated[
        str | None,
        typer.Option(help="Run in the censorship lab: a scenario name (iran) or YAML file."),
    ] = None,
    lab_state: Annotated[
        Path | None,
        typer.Option(help="Run in an already running lab, given its state file (LabNetwork JSON)."),
    ] = None,
    inputs: Annotated[
        list[str] | None, typer.Option("--input", help="A URL to measure (repeatable).")
    ] = None,
    input_file: Annotated[
        Path | None,
        typer.Option(help="A Citizen Lab test list (CSV) or one URL per line."),
    ] = None,
    output: Annotated[Path, typer.Option(help="Measurements, one per line (JSONL).")] = Path(
        "results.jsonl"
    ),
    collector: Annotated[str | None, typer.Option(help="Submit to this collector.")] = None,
    test_helper: Annotated[str | None, typer.Option(help="Control test helper URL.")] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=512,
            help=f"Sites measured at once (default {DEFAULT_CONCURRENCY}; {LAB_CONCURRENCY} in a lab).",
        ),
    ] = None,
) -> None:
    """Measure websites with web_connectivity: a progress bar, then a results table."""
    _fresh_consoles()
    try:
        results, seconds = asyncio.run(
            _websites_async(
                lab,
                lab_state,
                inputs or [],
                input_file,
                output,
                collector,
                test_helper,
                concurrency,
            )
        )
    except (ProbeError, TestListError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    out.print(results_table(results))
    console.print(summary_line(results, seconds))
    console.print(f"measurements written to {output}")


def register(app: typer.Typer) -> None:
    """Add `dideban run ...` (`dideban demo` lives in `dideban.demo`)."""
    app.add_typer(run_app, name="run")


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: dideban run websites")
