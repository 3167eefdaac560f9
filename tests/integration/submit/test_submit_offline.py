"""Offline probe: the collector is down, measurements are queued; it comes up, `drain()`
uploads every one exactly once; a second drain uploads nothing; `dideban status` lists uids."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from dideban.collector.process import free_port, serve_collector
from dideban.collector.storage import sealed_files
from dideban.model.rawfile import read_bytes
from dideban.probe.submit import Submitter

PROBE_IP = "203.0.113.77"


def synthetic(n: int) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return {
        "annotations": {},
        "data_format_version": "0.2.0",
        "input": f"http://offline-{n}.example/",
        "measurement_start_time": now,
        "probe_asn": "AS197207",
        "probe_cc": "IR",
        "probe_ip": PROBE_IP,
        "report_id": "",
        "software_name": "dideban",
        "software_version": "0.1.0",
        "test_keys": {"blocking": False, "n": n},
        "test_name": "web_connectivity",
        "test_start_time": now,
        "test_version": "0.5.0",
    }


def stored(data_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sealed_files(data_dir):
        rows += [json.loads(x) for x in read_bytes(path).splitlines()]
    return rows


async def test_offline_probe_queues_then_drains_exactly_once(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet: the collector is down
    url = f"http://127.0.0.1:{port}"
    qdir = tmp_path / "state" / "queue"
    s = Submitter(url, qdir, probe_addresses=[PROBE_IP], timeout=5.0)
    assert await s.open("web_connectivity", "0.5.0", "IR", "AS197207", "dideban", "0.1.0") is None
    outcomes = [await s.submit(synthetic(n)) for n in range(20)]
    assert all(o.queued for o in outcomes)
    await s.close()
    assert len(list((qdir / "pending").glob("*.json"))) == 20

    data_dir = tmp_path / "collector"
    async with serve_collector(data_dir, port=port):
        drainer = Submitter(url, qdir, probe_addresses=[PROBE_IP], timeout=5.0)
        first = await drainer.drain()
        assert len(first.uploaded) == 20 and first.remaining == 0 and first.error is None
        second = await drainer.drain()
        assert second.uploaded == [] and second.remaining == 0
        await drainer.close()
    rows = stored(data_dir)  # the collector sealed its segments on shutdown
    assert sorted(r["input"] for r in rows) == sorted(
        f"http://offline-{n}.example/" for n in range(20)
    )
    assert len({r["measurement_uid"] for r in rows}) == 20
    uids = {uid for _, uid in first.uploaded}
    assert uids == {r["measurement_uid"] for r in rows}
    assert all(r["probe_ip"] == "127.0.0.1" for r in rows)

    status = subprocess.run(
        [sys.executable, "-m", "dideban", "status", "--queue-dir", str(qdir), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    doc = json.loads(status.stdout)
    assert doc["queued"] == []
    assert {u["measurement_uid"] for u in doc["uploaded"]} == uids
    table = subprocess.run(
        [sys.executable, "-m", "dideban", "status", "--queue-dir", str(qdir), "--last", "100"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"COLUMNS": "250", "PATH": "/usr/bin:/bin"},
    )
    assert "queued: 0" in table.stdout and "uploaded: 20" in table.stdout
    assert all(uid in table.stdout for uid in uids)


async def test_dideban_upload_command_drains(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    qdir = tmp_path / "queue"
    s = Submitter(url, qdir, probe_addresses=[PROBE_IP], timeout=5.0)
    await s.open("web_connectivity", "0.5.0", "IR", "AS197207", "dideban", "0.1.0")
    for n in range(3):
        assert (await s.submit(synthetic(n))).queued
    await s.close()
    down = subprocess.run(
        [sys.executable, "-m", "dideban", "upload", "--queue-dir", str(qdir), "--attempts", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode == 1 and "3 still queued" in down.stdout
    async with serve_collector(tmp_path / "collector", port=port):
        import asyncio

        up = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "dideban", "upload", "--queue-dir", str(qdir)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert up.returncode == 0, up.stderr
    assert "3 uploaded, 0 rejected, 0 still queued" in up.stdout
    assert len(stored(tmp_path / "collector")) == 3
