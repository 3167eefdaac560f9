"""Measurements of the `iran` censorship-lab scenario get the blocking type of the technique
the lab applied, and the Iranian block pages come out confirmed with the right fingerprints.

`data/lab_iran_websites.jsonl` is the output of `dideban run websites --lab iran` (H3's probe
in the userspace lab, loopback only), committed so the test is pure; the second test reruns
the probe to check that the current probe still produces what the pipeline expects.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dideban.pipeline.analysis import analyze
from dideban.pipeline.fingerprints import default_db
from dideban.pipeline.readers import RawMeasurement, read_file

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "data" / "lab_iran_websites.jsonl"
SCENARIO = HERE.parents[2] / "src" / "dideban" / "lab" / "scenarios" / "iran.yaml"

TECHNIQUE_TO_TYPE: dict[str, str | None] = {
    "dns_hijack": "dns",
    "dns_inject": "dns",
    "dns_nxdomain": "dns",
    "dns_timeout": "dns",
    "tcp_reset": "tcp_ip",
    "tcp_timeout": "tcp_ip",
    "tls_reset": "tls",
    "tls_timeout": "tls",
    "http_blockpage": "http-diff",
    "http_reset": "http-failure",
    "throttle": None,
}


def expected_types() -> dict[str, str | None]:
    scenario = yaml.safe_load(SCENARIO.read_text(encoding="utf-8"))
    out: dict[str, str | None] = {}
    for site in scenario["sites"]:
        techniques = [c if isinstance(c, str) else c["technique"] for c in site.get("censor") or []]
        types = {TECHNIQUE_TO_TYPE[t] for t in techniques if t in TECHNIQUE_TO_TYPE}
        if len(types) <= 1 and set(techniques) <= set(TECHNIQUE_TO_TYPE):
            out[site["url"]] = types.pop() if types else None
    return out


def verdicts(path: Path) -> dict[str, Any]:
    out = {}
    for item in read_file(path):
        assert isinstance(item, RawMeasurement), item
        v = analyze(item, default_db()).verdict
        out[v.input] = v
    return out


def check(path: Path) -> None:
    got = verdicts(path)
    want = expected_types()
    assert set(want) <= set(got)
    wrong = {u: (got[u].blocking_type, t) for u, t in want.items() if got[u].blocking_type != t}
    assert wrong == {}
    censored = [u for u, t in want.items() if t is not None]
    assert len(censored) >= 15 and all(got[u].anomaly for u in censored)
    scenario = yaml.safe_load(SCENARIO.read_text(encoding="utf-8"))
    for site in scenario["sites"]:
        techniques = [c if isinstance(c, str) else c["technique"] for c in site.get("censor") or []]
        v = got[site["url"]]
        if "http_blockpage" in techniques:
            assert v.confirmed and {"ooni.ir_0", "ooni.ir_3"} <= set(v.fingerprints), v.fingerprints
        if any(
            isinstance(c, dict) and c.get("answer") == "10.10.34.35"
            for c in site.get("censor") or []
        ):
            assert v.confirmed and "ooni.ir_5" in v.fingerprints and v.blocking_type == "dns"


def test_committed_lab_run_gets_the_lab_blocking_types() -> None:
    check(FIXTURE)


def _fresh_run(tmp_path: Path) -> Path:
    out = tmp_path / "f.jsonl"
    cmd = [sys.executable, "-c", "from dideban.cli import main; main()", "run", "websites",
           "--lab", "iran", "--output", str(out)]  # fmt: skip
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, timeout=300)
    if r.returncode != 0 and b"No such command" in r.stderr:
        pytest.skip("the probe's `dideban run websites` is not available")
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def test_fresh_lab_run_gets_the_lab_blocking_types(tmp_path: Path) -> None:
    check(_fresh_run(tmp_path))


def test_fresh_lab_run_on_a_busy_machine_gets_the_lab_blocking_types(tmp_path: Path) -> None:
    """The lab's servers and the probe share one event loop, so the probe's timeouts (2 s in
    the lab) also count the lab's own work. With two busy processes a core, the lab's default
    concurrency (`probe.cli.LAB_CONCURRENCY`, 16) must still give every site the verdict of
    the technique the lab applied: at 64 sites at once, DNS answers came late and uncensored
    sites came out `dns` blocking (2 runs of 2; 16: 8 of 8 right)."""
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(2 * (os.cpu_count() or 1))
    ]
    try:
        out = _fresh_run(tmp_path)
    finally:
        for p in busy:
            p.kill()
            p.wait()
    check(out)
