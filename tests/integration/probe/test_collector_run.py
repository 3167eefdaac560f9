"""A lab run submitting to the collector: offline first (queued), then online (uploaded, and
the queue drained), each measurement stored exactly once and none with the probe's address."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import zstandard

from dideban.probe.cli import WebsitesRun, lab_session, run_websites
from dideban.probe.queue import MeasurementQueue

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"collector on port {port} did not start")


def _stored(data_dir: Path) -> list[dict[str, object]]:
    out = []
    for path in sorted((data_dir / "raw").rglob("*.jsonl.zst")):
        with path.open("rb") as f:
            text = zstandard.ZstdDecompressor().stream_reader(f).read().decode()
        out.extend(json.loads(line) for line in text.splitlines() if line.strip())
    return out


async def _run(inputs: list[str], output: Path, collector: str) -> None:
    async with lab_session("iran") as session:
        targets = [t for t in session.targets if t.url in inputs]
        run = WebsitesRun(
            targets, output, session.network, session.test_helper_url, 16, collector=collector,
            show_progress=False,
        )  # fmt: skip
        results = await run_websites(run)
        assert len(results) == len(inputs)


def test_offline_then_online_exactly_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dideban.lab.scenario import load_scenario

    scenario = load_scenario("iran")
    echo = [s.url for s in scenario.sites if s.echo_client]
    others = [s.url for s in scenario.sites if not s.echo_client]
    first, second = [*echo, *others[:4]], others[4:9]
    monkeypatch.setenv("DIDEBAN_STATE_DIR", str(tmp_path / "state"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"

    # 1. The collector is down: every measurement is queued, the run still writes its file.
    asyncio.run(_run(first, tmp_path / "a.jsonl", url))
    queue = MeasurementQueue(tmp_path / "state" / "queue")
    assert len(queue.pending()) == len(first)
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == len(first)

    # 2. The collector is up: the new run uploads its own and drains the queue.
    data = tmp_path / "collector"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dideban", "collector", "--data-dir", str(data), "--port", str(port)],
        env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_port(port)
        asyncio.run(_run(second, tmp_path / "b.jsonl", url))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert queue.pending() == []
    stored = _stored(data)
    assert Counter(str(m["input"]) for m in stored) == Counter(first + second)
    assert len({m["measurement_uid"] for m in stored}) == len(stored)
    public_ip = scenario.probe_public_ip
    raw = json.dumps(stored)
    assert public_ip not in raw
    assert all(m["probe_ip"] == "127.0.0.1" for m in stored)
    # What the file says and what the collector stored share the report id.
    b_lines = [json.loads(x) for x in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert {m["report_id"] for m in b_lines} <= {m["report_id"] for m in stored}
    assert all(m["report_id"] for m in b_lines)
