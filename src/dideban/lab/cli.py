"""`dideban lab ...`: run, stop and inspect the censorship lab; list and generate scenarios."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from dideban.lab.generate import generate_scenario, scenario_to_yaml
from dideban.lab.scenario import SCENARIO_DIR, Scenario, ScenarioError, load_scenario
from dideban.lab.state import (
    find_running_lab,
    lab_state_dir,
    pid_alive,
    running_labs,
    state_path,
)
from dideban.lab.userspace import UserspaceLab
from dideban.model.labnet import LabNetwork

lab_app = typer.Typer(
    name="lab",
    help="The censorship lab: an emulated censored network (userspace on loopback, or netns).",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _load(scenario: str) -> Scenario:
    try:
        return load_scenario(scenario)
    except ScenarioError as exc:
        raise _fail(str(exc)) from exc


def sites_table(scenario: Scenario, network: LabNetwork | None = None) -> Table:
    table = Table(title=f"lab {scenario.name}: {len(scenario.sites)} sites")
    for col in ("url", "lab address", "censor", "server", "expected"):
        table.add_column(col)
    for s in scenario.sites:
        censor = ", ".join(c.technique + (f" {c.params}" if c.params else "") for c in s.censor)
        expected = f"{s.expect.blocking}, {s.expect.accessible}" if s.expect else ""
        table.add_row(s.url, s.ip, censor or "-", s.server, expected)
    if network is not None:
        table.caption = (
            f"probe {network.probe_cc} {network.probe_asn} ({network.probe_network_name}); "
            f"ISP resolver {network.probe_view.resolver}, honest resolver "
            f"{network.control_view.resolver}"
        )
    return table


async def _run_foreground(scenario: Scenario, profile: str | None, state_dir: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with UserspaceLab(scenario, profile=profile, state_dir=state_dir) as lab:
        console.print(sites_table(scenario, lab.network))
        console.print(
            f"lab [bold]{scenario.name}[/bold] up in {lab.startup_seconds:.2f} s (pid "
            f"{os.getpid()}); state {state_path(scenario.name, state_dir)}. "
            "Ctrl-C or `dideban lab down` stops it.",
            highlight=False,
        )
        await stop.wait()
    console.print(f"lab {scenario.name} stopped")


@lab_app.command("up")
def up(
    scenario: Annotated[str, typer.Option(help="built-in scenario name or a YAML file")] = "iran",
    netns: Annotated[
        bool, typer.Option("--netns", help="real packets in network namespaces (root)")
    ] = False,
    profile: Annotated[
        str | None, typer.Option(help="ISP profile of the scenario, e.g. MCI-like, TCI-like")
    ] = None,
) -> None:
    """Start the lab. The userspace lab runs in the foreground until Ctrl-C or SIGTERM."""
    sc = _load(scenario)
    if netns:
        from dideban.lab import netns as netns_lab

        try:
            network = netns_lab.up(sc, profile=profile)
        except (ScenarioError, PermissionError, FileNotFoundError, ValueError) as exc:
            raise _fail(str(exc)) from exc
        console.print(sites_table(sc, network))
        console.print(f"netns lab {sc.name} up; `dideban lab down` removes it")
        return
    try:
        from dideban.lab.policy import pick_profile

        pick_profile(sc, profile)
    except ScenarioError as exc:
        raise _fail(str(exc)) from exc
    running = find_running_lab(sc.name)
    if running is not None:
        raise _fail(
            f"lab {sc.name} is already running (pid {running.pid}); `dideban lab down` first", 1
        )
    state_dir = lab_state_dir()
    try:
        asyncio.run(_run_foreground(sc, profile, state_dir))
    except OSError as exc:
        raise _fail(f"the lab could not start: {exc}", 1) from exc


def _is_dideban(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"dideban" in cmdline


@lab_app.command("down")
def down() -> None:
    """Stop running userspace labs (pids in their state files) and remove the netns lab."""
    stopped = 0
    for path, network, alive in running_labs():
        if network is None or not alive or not _is_dideban(network.pid):
            path.unlink(missing_ok=True)
            console.print(f"removed stale state {path}")
            continue
        if network.pid == os.getpid() or network.probe_view.direct:
            continue  # a netns lab announces itself here too: netns.down() below removes it
        os.kill(network.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_alive(network.pid) and path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(network.pid) and path.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(network.pid, signal.SIGKILL)
            path.unlink(missing_ok=True)
        stopped += 1
        console.print(f"stopped lab {network.name} (pid {network.pid})")
    if importlib.util.find_spec("dideban.lab.netns") is not None:
        from dideban.lab import netns as netns_lab

        try:
            removed = netns_lab.down()
        except (PermissionError, OSError) as exc:
            err.print(f"netns lab not removed: {exc}")
        else:
            for item in removed:
                console.print(f"netns lab: removed {item}")
    if not stopped:
        console.print("no userspace lab was running")


@lab_app.command("status")
def status() -> None:
    """Show the running labs."""
    labs = running_labs()
    if not labs:
        console.print(f"no userspace lab running (state dir {lab_state_dir()})")
    for path, network, alive in labs:
        if network is None:
            console.print(f"{path}: unreadable state file")
            continue
        state = "running" if alive else "not running (stale state file)"
        if network.probe_view.direct:
            state += " (netns lab)"
        console.print(
            f"{network.name}: {state}, pid {network.pid}, {network.probe_cc} "
            f"{network.probe_asn}, ISP resolver {network.probe_view.resolver}, honest "
            f"resolver {network.control_view.resolver}, {len(network.probe_view.routes)} "
            f"routes; state {path}",
            highlight=False,
        )
    if importlib.util.find_spec("dideban.lab.netns") is not None:
        from dideban.lab import netns as netns_lab

        if (netns_lab.state_dir() / "lab.json").exists():
            console.print(f"netns lab: state in {netns_lab.state_dir()}")


@lab_app.command("scenarios")
def scenarios() -> None:
    """List the built-in scenarios."""
    table = Table(title="built-in scenarios")
    for col in ("name", "sites", "censored", "description"):
        table.add_column(col)
    for path in sorted(SCENARIO_DIR.glob("*.yaml")):
        try:
            sc = load_scenario(str(path))
        except ScenarioError as exc:
            table.add_row(path.stem, "-", "-", f"invalid: {exc}")
            continue
        censored = sum(1 for s in sc.sites if s.censor and s.techniques() != {"throttle"})
        table.add_row(sc.name, str(len(sc.sites)), str(censored), sc.description)
    console.print(table)


@lab_app.command("generate")
def generate(
    from_csv: Annotated[Path, typer.Option("--from", help="Citizen Lab test list (CSV)")],
    out: Annotated[Path, typer.Option("--out", help="scenario YAML to write")],
    blocked_fraction: Annotated[float, typer.Option(help="share of sites censored")] = 0.3,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    name: Annotated[str | None, typer.Option(help="scenario name")] = None,
) -> None:
    """Generate a scenario from a test list: one site per hostname, a mix of techniques."""
    try:
        sc = generate_scenario(from_csv, blocked_fraction=blocked_fraction, seed=seed, name=name)
        text = scenario_to_yaml(sc)
    except ScenarioError as exc:
        raise _fail(str(exc)) from exc
    if not out.parent.is_dir():
        raise _fail(f"{out.parent}: no such directory")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _fail(f"{out}: cannot write: {exc.strerror or exc}") from exc
    censored = sum(1 for s in sc.sites if s.censor)
    console.print(
        f"wrote {out}: {len(sc.sites)} sites, {censored} censored ({censored / len(sc.sites):.0%})"
    )
