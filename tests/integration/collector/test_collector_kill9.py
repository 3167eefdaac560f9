"""kill -9 in the middle of 10,000 concurrent submissions, then a restart on the same data dir.

Every measurement that got a uid before the kill must already be on disk (in an open segment,
complete lines only) and, after the restart, readable in the sealed raw files. After the
submitters retried everything that failed, each of the 10,000 is stored exactly once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from collector_kit import OPEN_REQUEST

from dideban.collector.process import CollectorProcess
from dideban.collector.storage import sealed_files
from dideban.model.rawfile import read_bytes

pytestmark = pytest.mark.slow

TOTAL = 10_000
SUBMITTERS = 40
KILL_AFTER = 3_000


def _measurement(rid: str, n: int) -> dict[str, Any]:
    return {
        "data_format_version": "0.2.0",
        "measurement_start_time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "probe_asn": "AS197207",
        "probe_cc": "IR",
        "probe_ip": "127.0.0.1",
        "report_id": rid,
        "software_name": "dideban",
        "software_version": "0.1.0",
        "test_keys": {"n": n, "blocking": False, "accessible": True},
        "test_name": "web_connectivity",
        "test_version": "0.5.0",
        "input": f"http://site-{n}.example/",
    }


def _uids_in_open_segments(data_dir: Path) -> set[str]:
    """uids on complete lines of the unsealed segments (read without the collector's code)."""
    found: set[str] = set()
    for path in (data_dir / "open").rglob("*.jsonl"):
        data = path.read_bytes()
        for line in data[: data.rfind(b"\n") + 1].splitlines():
            doc = json.loads(line.split(b" ", 2)[2])
            found.add(doc["measurement_uid"])
    return found


def _stored(data_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sealed_files(data_dir):
        rows += [json.loads(x) for x in read_bytes(path).splitlines()]
    return rows


async def test_kill9_mid_submission_loses_nothing_acknowledged(
    collector_process: CollectorProcess,
) -> None:
    proc = collector_process
    proc.start()
    acked: dict[int, str] = {}
    killed = asyncio.Event()
    acked_at_kill: dict[int, str] = {}
    limits = httpx.Limits(max_connections=SUBMITTERS, max_keepalive_connections=SUBMITTERS)

    async with httpx.AsyncClient(base_url=proc.url, timeout=5.0, limits=limits) as client:
        reports = []
        for _ in range(SUBMITTERS):
            r = await client.post("/report", json=OPEN_REQUEST)
            reports.append(r.json()["report_id"])

        async def submitter(k: int) -> None:
            rid = reports[k]
            for n in range(k, TOTAL, SUBMITTERS):
                doc = {"format": "json", "content": _measurement(rid, n)}
                while True:  # a real probe retries until it has a uid
                    try:
                        r = await client.post(f"/report/{rid}", json=doc)
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)
                        continue
                    if r.status_code >= 500:
                        await asyncio.sleep(0.05)
                        continue
                    assert r.status_code == 200, r.text
                    acked[n] = r.json()["measurement_uid"]
                    break

        async def killer() -> None:
            while len(acked) < KILL_AFTER:
                await asyncio.sleep(0.005)
            proc.kill9()
            acked_at_kill.update(acked)
            killed.set()
            # The data dir as the kill left it: every acknowledged uid is on a complete line.
            on_disk = _uids_in_open_segments(proc.data_dir)
            on_disk |= {r["measurement_uid"] for r in _stored(proc.data_dir)}  # hour rollover
            missing = set(acked_at_kill.values()) - on_disk
            assert not missing, f"{len(missing)} acknowledged measurements not on disk"
            await asyncio.sleep(0.3)  # the submitters now see connection errors
            await asyncio.to_thread(proc.start)

        tasks = [asyncio.create_task(submitter(k)) for k in range(SUBMITTERS)]
        kill_task = asyncio.create_task(killer())
        await asyncio.wait_for(asyncio.gather(kill_task, *tasks), timeout=120)

    assert killed.is_set() and KILL_AFTER <= len(acked_at_kill) < TOTAL
    proc.stop()  # graceful: seals the open segments
    rows = _stored(proc.data_dir)
    by_uid = {r["measurement_uid"]: r for r in rows}
    inputs = [r["input"] for r in rows]
    assert len(rows) == TOTAL, f"{len(rows)} stored lines for {TOTAL} measurements"
    assert len(by_uid) == TOTAL and len(set(inputs)) == TOTAL
    # Every uid a submitter got (before or after the kill) names its own measurement.
    for n, uid in acked.items():
        assert by_uid[uid]["test_keys"]["n"] == n
    for n, uid in acked_at_kill.items():
        assert acked[n] == uid
