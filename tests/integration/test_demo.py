"""`dideban demo`, the README's first command: lab, test helper, collector, probe, ingest,
verdicts and dashboard, end to end on loopback."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from dideban.cli import build_app
from dideban.collector.storage import sealed_files
from dideban.lab.scenario import load_scenario
from dideban.store import Store

pytestmark = pytest.mark.slow


def test_demo_stores_and_analyses_every_lab_site(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    env = {"DIDEBAN_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    result = CliRunner().invoke(
        build_app(), ["demo", "--workdir", str(workdir), "--no-serve"], env=env
    )
    assert result.exit_code == 0, result.output
    sites = load_scenario("iran").sites

    # The probe's own file and the collector's sealed raw files hold every site once.
    lines = (workdir / "measurements.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(sites)
    assert sealed_files(workdir / "collector")
    with Store.open(workdir / "dideban.duckdb", read_only=True) as store:
        counts = store.counts()
        rows = store.conn.execute(
            "SELECT input, blocking_type, confirmed, fingerprints FROM verdicts"
        ).fetchall()
        categories = dict(
            store.conn.execute("SELECT input, category_code FROM verdicts").fetchall()
        )
    # Categories are joined from the Citizen Lab lists at ingest, as OONI's API does.
    assert categories["https://www.facebook.com/"] == "GRP"
    assert counts["verdicts"] == len(sites) == counts["measurements"]
    by_url = {url: (btype, confirmed, fps) for url, btype, confirmed, fps in rows}
    assert set(by_url) == {s.url for s in sites}
    # The pipeline's verdicts, recomputed from the collector's raw data, name the technique.
    assert by_url["https://www.facebook.com/"][0] == "dns"
    assert "ooni.ir_5" in by_url["https://www.facebook.com/"][2]
    assert by_url["https://www.instagram.com/"][0] == "tls"
    blockpage = [s.url for s in sites if "http_blockpage" in s.techniques()]
    assert blockpage
    for url in blockpage:
        btype, confirmed, fps = by_url[url]
        assert (btype, confirmed) == ("http-diff", True), url
        assert "ooni.ir_0" in fps
    working = [s.url for s in sites if not s.censor and s.server == "ok"]
    assert all(by_url[u][0] is None for u in working)
    assert "pipeline verdicts" in result.output


def test_demo_serves_the_dashboard_until_stopped(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    env = dict(os.environ, DIDEBAN_STATE_DIR=str(tmp_path / "state"), COLUMNS="200")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dideban", "demo", "--workdir", str(workdir), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = None
        seen: list[str] = []
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            match = re.search(r"Dashboard:\s+(http://127\.0\.0\.1:\d+/)", line)
            if match:
                url = match.group(1)
        assert url is not None, "".join(seen)[-3000:]
        home = httpx.get(url, timeout=10)
        assert home.status_code == 200 and "<html" in home.text.lower()
        api = httpx.get(url + "api/v1/measurements", params={"probe_cc": "IR"}, timeout=10)
        body = api.json()
        assert api.status_code == 200 and body["results"], body
        assert all(r["probe_cc"] == "IR" for r in body["results"])
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0
