"""The userspace lab's expectation matrix, end to end through the netns lab, with the unmodified
probe running inside the probe namespace (OS resolver = the lab's ISP resolver, real sockets),
and the MCI-like / TCI-like profiles seen at the probe's TLS step.

The probe finds the running netns lab through the lab state it publishes (see `_probe_args`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from netns_helpers import ns_exec, requires_netns

from dideban.lab import netns
from dideban.lab.netns import plan as P
from dideban.lab.netns import topology
from dideban.lab.scenario import Scenario, ScenarioError, load_scenario
from dideban.model.labnet import LabNetwork

pytestmark = [pytest.mark.netns, pytest.mark.slow, requires_netns]


def _help(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "dideban", *args, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout if out.returncode == 0 else ""


def _missing() -> str | None:
    """Why the end-to-end matrix cannot run yet (parts other helpers build), or None."""
    try:
        load_scenario("iran")
    except ScenarioError:
        return "scenario iran.yaml not present yet"
    run_help = _help("run", "websites")
    if not run_help:
        return "`dideban run websites` not available yet"
    if "--lab-state" not in run_help:
        try:
            from dideban.lab import find_running_lab  # noqa: F401
        except ImportError:
            return (
                "the probe cannot take the netns lab's state (no --lab-state, no find_running_lab)"
            )
    if "--lab-state" not in _help("testhelper"):
        return "`dideban testhelper --lab-state` not available yet (the control must run in the lab's Internet)"
    return None


@pytest.fixture(scope="module")
def iran() -> Scenario:
    reason = _missing()
    if reason is not None:
        pytest.skip(reason)
    return load_scenario("iran")


@pytest.fixture(scope="module")
def lab(iran: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNetwork]:
    # up() announces the lab in this state dir; the probe (same environment) finds it there.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIDEBAN_STATE_DIR", str(tmp_path_factory.mktemp("state")))
        network = netns.up(iran, test_helper=True)
        yield network
        netns.down()


def _probe_args(name: str) -> list[str]:
    state = str(netns.state_dir() / "lab.json")
    if "--lab-state" in _help("run", "websites"):
        return ["--lab-state", state]
    return ["--lab", name]


def run_probe(name: str, out: Path, *inputs: str) -> list[dict[str, Any]]:
    args = [
        sys.executable,
        "-m",
        "dideban",
        "run",
        "websites",
        *_probe_args(name),
        "--output",
        str(out),
    ]
    for url in inputs:
        args += ["--input", url]
    proc = ns_exec(P.NS_PROBE, *args, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [
        json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def test_expectation_matrix_end_to_end(lab: LabNetwork, iran: Scenario, tmp_path: Path) -> None:
    measurements = run_probe(iran.name, tmp_path / "matrix.jsonl")
    by_url = {m["input"]: m for m in measurements}
    problems = []
    for site in iran.sites:
        if site.expect is None:
            continue
        m = by_url.get(site.url)
        if m is None:
            problems.append(f"{site.url}: not measured")
            continue
        got = (m["test_keys"]["blocking"], m["test_keys"]["accessible"])
        want = (site.expect.blocking, site.expect.accessible)
        if got != want:
            problems.append(f"{site.url} ({sorted(site.techniques())}): got {got}, want {want}")
    assert problems == []
    for m in measurements:
        assert lab.probe_public_ip not in json.dumps(m)
        assert m["probe_cc"] == "IR"
    assert topology.host_leak_count() == 0
    assert topology.chain_packets(P.NS_CENSOR, "dideban-leak") == 0


def _tls_failures(m: dict[str, Any]) -> set[str | None]:
    return {h.get("failure") for h in m["test_keys"].get("tls_handshakes") or []}


def test_mci_resets_tci_drops_at_the_tls_step(
    lab: LabNetwork, iran: Scenario, tmp_path: Path
) -> None:
    sni_sites = [s for s in iran.sites if s.techniques() & {"tls_reset", "tls_timeout"}]
    assert sni_sites, "iran.yaml has no SNI-blocked site"
    url = sni_sites[0].url
    try:
        netns.configure(profile="MCI-like", scenario=iran)
        (mci,) = run_probe(iran.name, tmp_path / "mci.jsonl", url)
        netns.configure(profile="TCI-like", scenario=iran)
        (tci,) = run_probe(iran.name, tmp_path / "tci.jsonl", url)
    finally:
        netns.configure(profile="", scenario=iran)
    assert "connection_reset" in _tls_failures(mci)
    assert "generic_timeout_error" in _tls_failures(tci)
    assert mci["probe_asn"] == "AS197207" and tci["probe_asn"] == "AS58224"
    for m in (mci, tci):
        assert (
            m["test_keys"]["blocking"] == "http-failure" and m["test_keys"]["accessible"] is False
        )
    # The pipeline's analysis names the technique: blocking at the TLS layer, for both.
    verdicts = subprocess.run(
        [sys.executable, "-m", "dideban", "analyze", "--format", "jsonl",
         str(tmp_path / "mci.jsonl"), str(tmp_path / "tci.jsonl")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert verdicts.returncode == 0, verdicts.stderr
    rows = [json.loads(line) for line in verdicts.stdout.splitlines() if line.strip()]
    assert [(r["probe_asn"], r["blocking_type"]) for r in rows] == [
        ("AS197207", "tls"),
        ("AS58224", "tls"),
    ]


def test_probe_submits_to_the_lab_collector(
    lab: LabNetwork, iran: Scenario, tmp_path: Path
) -> None:
    if not lab.collector_url:
        pytest.skip("`dideban collector` not available: the lab runs without a collector")
    site = next(s for s in iran.sites if s.expect is not None and s.expect.accessible)
    out = tmp_path / "submitted.jsonl"
    args = [sys.executable, "-m", "dideban", "run", "websites", *_probe_args(iran.name)]
    args += ["--input", site.url, "--output", str(out), "--collector", lab.collector_url]
    proc = ns_exec(P.NS_PROBE, *args, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    raw = netns.state_dir() / "collector" / "raw"
    deadline = time.monotonic() + 10  # the collector seals segments after 1 s
    while not list(raw.rglob("*web_connectivity*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(raw.rglob("*web_connectivity*")), "no measurement reached the lab collector"
