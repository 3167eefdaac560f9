"""`down` leaves nothing behind, also after a crash; `up` cleans an earlier run; bad input changes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netns_helpers import HERE, requires_netns

from dideban.lab import netns
from dideban.lab.netns import plan as P
from dideban.lab.netns import topology
from dideban.lab.scenario import load_scenario, parse_scenario
from dideban.model.labnet import LabNetwork

pytestmark = [pytest.mark.netns, requires_netns]


def _pids() -> dict[str, int]:
    pids = netns.state_dir() / "pids"
    return {f.stem: int(f.read_text(encoding="utf-8")) for f in pids.glob("*.pid")}


def _alive(pid: int) -> bool:
    try:
        return b"dideban" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _leftovers() -> list[str]:
    found = [f"namespace {ns}" for ns in topology.lab_namespaces()]
    found += (
        [str(p) for p in Path("/etc/netns").glob("dideban-*")]
        if Path("/etc/netns").exists()
        else []
    )
    if (
        subprocess.run(["iptables", "-S", topology.HOST_LEAK_CHAIN], capture_output=True).returncode
        == 0
    ):
        found.append("host chain")
    if "DIDEBAN" in subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout:
        found.append("host rule")
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found += [line for line in links.splitlines() if "dbp-" in line or "dideban" in line]
    if netns.state_dir().exists():
        found.append(str(netns.state_dir()))
    return found


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIDEBAN_STATE_DIR", str(tmp_path))


def test_down_after_a_crash_leaves_nothing(tmp_path: Path) -> None:
    sc = load_scenario(str(HERE / "lab.yaml"))
    netns.up(sc)  # with the test helper and collector when installed: they must go too
    assert (tmp_path / "lab" / f"{sc.name}.json").exists()
    pids = _pids()
    assert {"supervisor", "censor", "inet", "domestic"} <= set(pids)
    assert all(_alive(p) for p in pids.values())
    # Crash: the supervisor dies without cleaning up; its children keep running.
    os.kill(pids["supervisor"], signal.SIGKILL)
    time.sleep(0.2)
    assert _alive(pids["censor"]) and P.NS_CENSOR in topology.lab_namespaces()
    removed = netns.down()
    assert any(r.startswith("process censor") for r in removed)
    assert f"namespace {P.NS_PROBE}" in removed
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids.values())
    assert _leftovers() == []
    assert not (tmp_path / "lab" / f"{sc.name}.json").exists()
    assert netns.down() == []  # idempotent


def test_up_cleans_an_earlier_run_and_down_after_kill_of_children() -> None:
    sc = load_scenario(str(HERE / "lab.yaml"))
    try:
        netns.up(sc, test_helper=False, collector=False)
        first = _pids()
        os.kill(first["censor"], signal.SIGKILL)  # a child crash: the supervisor restarts it
        deadline = time.monotonic() + 5
        while _pids().get("censor") in (None, first["censor"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _pids()["censor"] != first["censor"] and _alive(_pids()["censor"])
        netns.up(
            sc, test_helper=False, collector=False
        )  # without down: up removes the earlier lab first
        second = _pids()
        assert not any(_alive(p) for p in first.values())
        assert all(_alive(p) for p in second.values())
    finally:
        netns.down()
    assert _leftovers() == []


def test_bad_scenario_changes_nothing() -> None:
    bad = parse_scenario(
        {
            "probe": {"cc": "IR", "asn": "AS1", "network_name": "n", "public_ip": "203.0.113.7"},
            "sites": [{"url": "https://a.example", "ip": "198.18.254.53"}],
        }
    )
    with pytest.raises(netns.PlanError, match="reserved"):
        netns.up(bad)
    with pytest.raises(netns.PlanError, match="no ISP profile"):
        netns.up(load_scenario(str(HERE / "lab.yaml")), profile="nope")
    assert _leftovers() == []


def test_cli_up_then_down(tmp_path: Path) -> None:
    env = dict(os.environ, DIDEBAN_STATE_DIR=str(tmp_path))
    scenario = str(HERE / "lab.yaml")
    up = subprocess.run(
        [sys.executable, "-m", "dideban", "lab", "up", "--netns", "--scenario", scenario,
         "--profile", "TCI-like"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert up.returncode == 0, up.stdout + up.stderr
    lab = LabNetwork.from_json((netns.state_dir() / "lab.json").read_text(encoding="utf-8"))
    assert lab.probe_asn == "AS58224"
    assert set(topology.lab_namespaces()) == set(P.NAMESPACES)
    down = subprocess.run(
        [sys.executable, "-m", "dideban", "lab", "down"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert down.returncode == 0, down.stdout + down.stderr
    assert "removed namespace dideban-censor" in down.stdout
    assert _leftovers() == []
