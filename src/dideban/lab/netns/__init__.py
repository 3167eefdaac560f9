"""The network-namespace censorship lab: real packets through an on-path censor (root only).

    probe ns ── censor ns (router: iptables + NFQUEUE daemon + raw-socket injector + tc) ──┬── inet ns
                                                                                           └── domestic ns

`up(scenario, profile=...)` builds the namespaces from the scenario (see `plan.py` for the
addresses), starts the lab's processes under a detached supervisor and returns the
`LabNetwork` (also written to STATE_DIR/lab.json for `--lab-state`). Run the unmodified probe
inside the probe namespace: `ip netns exec dideban-probe dideban run websites ...`; its OS
resolver is the lab's ISP resolver (/etc/netns/dideban-probe/resolv.conf).
`down()` removes every namespace, process, rule and file, also after a crash; `up` calls it
first. `configure(...)` changes the censor of a running lab (ISP profile, protocol filter
window, shutdown modes) without restarting it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from dideban.lab.netns import topology
from dideban.lab.netns.plan import (
    COLLECTOR_IP,
    COLLECTOR_PORT,
    HONEST_RESOLVER,
    ISP_RESOLVER,
    NS_PROBE,
    TEST_HELPER_IP,
    TEST_HELPER_PORT,
    Plan,
    PlanError,
    make_plan,
    pick_profile,
)
from dideban.lab.scenario import Scenario
from dideban.lab.state import read_state, write_state
from dideban.model.labnet import LabNetwork, LabView

__all__ = [
    "NS_PROBE",
    "LabNotRunning",
    "PlanError",
    "configure",
    "down",
    "state_dir",
    "up",
]

TIMEOUTS = {"dns": 2.0, "connect": 3.0, "tls": 3.0, "http": 6.0, "udp_listen_after_first": 0.5}
READY_TIMEOUT = 30.0
SHUTDOWN_MODES = ("", "blackhole", "curfew", "reset_after")


class LabNotRunning(RuntimeError):
    pass


def state_dir() -> Path:
    """Where the running lab keeps its plan, pidfiles, logs and CA (fixed, so `down` finds it)."""
    return Path(os.environ.get("DIDEBAN_NETNS_STATE_DIR", "/run/dideban-netns"))


def _require_root() -> None:
    if os.geteuid() != 0:
        raise PermissionError("the netns lab needs root (network namespaces, iptables, NFQUEUE)")
    if shutil.which("ip") is None or shutil.which("iptables") is None:
        raise FileNotFoundError("the netns lab needs iproute2 and iptables")


def _cli_supports(command: str, flag: str) -> bool:
    """Does `dideban COMMAND` exist here and take `flag`? (Parts of the system are optional.)"""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "dideban", command, "--help"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and flag in out.stdout


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def up(
    scenario: Scenario,
    *,
    profile: str | None = None,
    protocol_filter_window: float = 60.0,
    test_helper: bool | None = None,
    collector: bool | None = None,
) -> LabNetwork:
    """Start the netns lab for `scenario` and return its `LabNetwork`.

    `profile` is an ISP profile name (MCI-like resets, TCI-like drops). The control test
    helper and the collector run in the lab's Internet (198.51.100.80:8080, .81:8080);
    `None` starts each when its `dideban` command is installed.
    Bad input raises (PlanError, PermissionError) before anything is changed.
    """
    plan = make_plan(scenario, profile=profile, protocol_filter_window=protocol_filter_window)
    _require_root()
    from dideban.lab.netns.services import make_ca

    down()
    state = state_dir()
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o700)
    ca_pem, ca_key = make_ca()
    (state / "ca.pem").write_bytes(ca_pem)
    (state / "ca.key").write_bytes(ca_key)
    _write_json(state / "plan.json", plan.to_dict())
    with_helper = _cli_supports("testhelper", "--lab-state") if test_helper is None else test_helper
    with_collector = _cli_supports("collector", "--data-dir") if collector is None else collector
    endpoints = [(TEST_HELPER_IP, TEST_HELPER_PORT)] if with_helper else []
    endpoints += [(COLLECTOR_IP, COLLECTOR_PORT)] if with_collector else []
    try:
        topology.build(plan)
        network = LabNetwork(
            name=scenario.name,
            probe_cc=plan.probe_cc,
            probe_asn=plan.probe_asn,
            probe_network_name=plan.probe_network_name,
            probe_public_ip=plan.probe_ip,
            probe_view=LabView(routes={}, resolver=f"{ISP_RESOLVER}:53", direct=True),
            control_view=LabView(routes={}, resolver=f"{HONEST_RESOLVER}:53", direct=True),
            ca_pem=ca_pem.decode(),
            test_helper_url=f"http://{TEST_HELPER_IP}:{TEST_HELPER_PORT}" if with_helper else "",
            collector_url=f"http://{COLLECTOR_IP}:{COLLECTOR_PORT}" if with_collector else "",
            timeouts=dict(TIMEOUTS),
            pid=0,
        )
        (state / "lab.json").write_text(network.to_json(), encoding="utf-8")
        args = [sys.executable, "-m", "dideban.lab.netns.supervisor", str(state), "--daemon"]
        args += ["--test-helper"] if with_helper else []
        args += ["--collector"] if with_collector else []
        with (state / "supervisor.log").open("ab") as log:
            subprocess.run(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=True
            )
        sup_pid = _wait_ready(state, endpoints)
    except BaseException:
        down()
        raise
    network = LabNetwork.from_dict({**json.loads(network.to_json()), "pid": sup_pid})
    (state / "lab.json").write_text(network.to_json(), encoding="utf-8")
    # Announce it where `find_running_lab` looks, so `ip netns exec dideban-probe dideban run
    # websites --lab NAME` reuses it (from the host namespace the leak guard refuses its
    # addresses).
    (state / "registered").write_text(str(write_state(network)), encoding="utf-8")
    return network


def _wait_ready(state: Path, endpoints: list[tuple[str, int]]) -> int:
    """Wait until the lab's processes listen; returns the supervisor's pid."""
    deadline = time.monotonic() + READY_TIMEOUT
    wanted = [state / f"ready-{r}" for r in ("censor", "inet", "domestic")]
    pid_file = state / "pids" / "supervisor.pid"
    while not all(p.exists() for p in wanted):
        if pid_file.exists() and not _pid_is_ours(int(pid_file.read_text(encoding="utf-8"))):
            raise RuntimeError(f"netns lab supervisor exited; see {state}/logs")
        if time.monotonic() > deadline:
            missing = [p.name for p in wanted if not p.exists()]
            raise TimeoutError(
                f"netns lab not ready after {READY_TIMEOUT}s: {missing}; see {state}/logs"
            )
        time.sleep(0.05)
    sup_pid = int(pid_file.read_text(encoding="utf-8"))
    if endpoints:
        # The test helper and collector have no ready file: wait, from the probe namespace
        # (through the censor), until their ports accept.
        remaining = max(1.0, deadline - time.monotonic())
        script = (
            "import socket, sys, time\n"
            f"end = time.monotonic() + {remaining:.1f}\n"
            f"for ep in {endpoints!r}:\n"
            "    while True:\n"
            "        try:\n"
            "            socket.create_connection(ep, 1).close()\n"
            "            break\n"
            "        except OSError:\n"
            "            if time.monotonic() > end:\n"
            "                sys.exit(f'{ep} not reachable')\n"
            "            time.sleep(0.1)\n"
        )
        proc = subprocess.run(
            ["ip", "netns", "exec", NS_PROBE, sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=remaining + 10,
        )
        if proc.returncode != 0:
            raise TimeoutError(
                f"netns lab services not reachable ({proc.stderr.strip()}); see {state}/logs"
            )
    return sup_pid


def _pid_is_ours(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"dideban" in cmdline


def _kill(pid: int) -> bool:
    """SIGTERM, then SIGKILL after a grace period; True when a process was stopped."""
    if not _pid_is_ours(pid):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and _pid_is_ours(pid):
        time.sleep(0.05)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    if _pid_is_ours(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True


def down() -> list[str]:
    """Remove everything the netns lab created; idempotent. Returns what was removed."""
    removed: list[str] = []
    state = state_dir()
    pids = state / "pids"
    if pids.is_dir():
        # The supervisor first, so it does not restart what we stop next.
        files = sorted(pids.glob("*.pid"), key=lambda p: p.stem != "supervisor")
        for f in files:
            try:
                pid = int(f.read_text(encoding="utf-8").strip())
            except (OSError, ValueError):
                pid = 0
            if pid and _kill(pid):
                removed.append(f"process {f.stem} ({pid})")
            f.unlink(missing_ok=True)
    if os.geteuid() == 0 and shutil.which("ip"):
        for ns in topology.lab_namespaces():
            for pid in topology.namespace_pids(ns):
                if _kill(pid):
                    removed.append(f"process in {ns} ({pid})")
        removed += topology.delete_namespaces()
        if shutil.which("iptables") and topology.remove_host_leak_counters():
            removed.append(f"host iptables chain {topology.HOST_LEAK_CHAIN}")
    registered = state / "registered"
    if registered.exists():
        path = Path(registered.read_text(encoding="utf-8"))
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            lab = json.loads((state / "lab.json").read_text(encoding="utf-8"))
            if read_state(path).pid == lab["pid"]:
                path.unlink()
                removed.append(f"lab state {path}")
    if state.exists():
        shutil.rmtree(state, ignore_errors=True)
        removed.append(f"state {state}")
    return removed


def _load_plan() -> Plan:
    path = state_dir() / "plan.json"
    if not path.exists():
        raise LabNotRunning("no netns lab is running (dideban lab up --netns)")
    return Plan.from_dict(json.loads(path.read_text(encoding="utf-8")))


def configure(
    *,
    profile: str | None = None,
    protocol_filter_window: float | None = None,
    shutdown: str | None = None,
    curfew: tuple[str, str] | None = None,
    reset_after: float | None = None,
    scenario: Scenario | None = None,
) -> Plan:
    """Change the running lab's censor; returns the new plan.

    `shutdown`: "" (none), "blackhole" (international gateway cut, domestic still reachable),
    "curfew" (the same inside the daily UTC window `curfew=("HH:MM", "HH:MM")`) or
    "reset_after" (RST to both ends of every 53/80/443 flow older than `reset_after` s).
    `profile` needs the `scenario` the lab runs (its TLS techniques are re-derived).
    Invalid values raise ValueError and change nothing.
    """
    plan = _load_plan()
    if shutdown is not None and shutdown not in SHUTDOWN_MODES:
        raise ValueError(f"shutdown must be one of {SHUTDOWN_MODES}, got {shutdown!r}")
    if shutdown == "curfew" and curfew is None:
        raise ValueError("curfew needs a window: curfew=('HH:MM', 'HH:MM')")
    if curfew is not None:
        for t in curfew:
            hh, _, mm = t.partition(":")
            if not (
                hh.isascii()
                and hh.isdigit()
                and mm.isascii()
                and mm.isdigit()
                and int(hh) < 24
                and int(mm) < 60
            ):
                raise ValueError(f"curfew time must be HH:MM, got {t!r}")
    if protocol_filter_window is not None and protocol_filter_window < 0:
        raise ValueError("protocol_filter_window must be >= 0")
    if reset_after is not None and reset_after < 0:
        raise ValueError("reset_after must be >= 0")
    if shutdown == "reset_after" and not (reset_after or plan.censor.reset_after):
        raise ValueError("reset_after shutdown needs reset_after > 0")
    if profile is not None:
        if scenario is None:
            raise ValueError("changing the profile needs the scenario")
        pick_profile(scenario, profile or None)  # raises PlanError for an unknown name
        fresh = make_plan(scenario, profile=profile or None)
        plan.censor.sni_reset = fresh.censor.sni_reset
        plan.censor.sni_drop = fresh.censor.sni_drop
        plan.profile, plan.probe_asn = fresh.profile, fresh.probe_asn
        plan.probe_network_name = fresh.probe_network_name
    if protocol_filter_window is not None:
        plan.censor.protocol_filter_window = protocol_filter_window
    if shutdown is not None:
        plan.shutdown = shutdown
        plan.censor.reset_after = 0.0
        if shutdown == "reset_after":
            plan.censor.reset_after = reset_after or plan.censor.reset_after
        if curfew is not None:
            plan.curfew_start, plan.curfew_stop = curfew
    state = state_dir()
    _write_json(state / "plan.json", plan.to_dict())
    lab_json = state / "lab.json"
    if lab_json.exists():
        lab = json.loads(lab_json.read_text(encoding="utf-8"))
        lab.update(probe_asn=plan.probe_asn, probe_network_name=plan.probe_network_name)
        _write_json(lab_json, lab)
        registered = state / "registered"
        if registered.exists():
            write_state(LabNetwork.from_dict(lab), Path(registered.read_text()).parent)
    topology.set_shutdown(plan)
    pid_file = state / "pids" / "censor.pid"
    pid = int(pid_file.read_text(encoding="utf-8")) if pid_file.exists() else 0
    if not pid or not _pid_is_ours(pid):
        raise LabNotRunning("the censor daemon is not running")
    log = state / "censor.log"
    before = log.read_text(encoding="utf-8").count("reloaded") if log.exists() else 0
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if log.exists() and log.read_text(encoding="utf-8").count("reloaded") > before:
            return plan
        time.sleep(0.05)
    raise TimeoutError("the censor daemon did not reload its plan")
