"""Collector load: measurements/s and p50/p99 submission latency under concurrent submitters.

The collector runs as a subprocess on 127.0.0.1 with durability on (every acknowledged
measurement fsynced, group commit). The submitters are a lean asyncio HTTP/1.1 keep-alive
client (one connection each), so that the client spends as little of the shared CPU as
possible. Each measurement is a real OONI web_connectivity measurement from the fixtures
(~15 KB) with its own input, so none is an idempotent duplicate.

Baseline, measured in the same run: the same load against the collector with `--no-fsync`;
the ratio shows what durability costs. Goal (issue 3): >= 2,000 measurements/s and p99 < 50 ms
with durability on, on 2 cores.

    python bench/collector_load.py [--concurrency 48] [--total 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from dideban.collector.process import CollectorProcess, free_port
from dideban.model.report import OpenReport

SAMPLE = (
    Path(__file__).resolve().parents[1]
    / "tests/fixtures/ooni-samples/20250527233111.802678_ID_webconnectivity_5a37ec909dbf14e3.json"
)
MARK = "@@N@@"
OPEN_REPORT = OpenReport("web_connectivity", "0.5.0", "IR", "AS197207", "dideban", "0.1.0")


def _template(report_id: str) -> tuple[bytes, bytes]:
    m: dict[str, Any] = json.loads(SAMPLE.read_text())
    m.pop("measurement_uid", None)
    m.update(
        probe_cc="IR",
        probe_asn="AS197207",
        report_id=report_id,
        test_name="web_connectivity",
        input=f"http://bench-{MARK}.example/",
        measurement_start_time=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
    )
    text = json.dumps({"format": "json", "content": m})
    before, after = text.split(MARK)
    return before.encode(), after.encode()


async def _submitter(port: int, report_id: str, numbers: range, latencies: list[float]) -> None:
    before, after = _template(report_id)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST /report/{report_id} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    try:
        for n in numbers:
            body = before + str(n).encode() + after
            req = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            t0 = time.perf_counter()
            writer.write(req)
            headers = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", headers).group(1))  # type: ignore[union-attr]
            payload = await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if not headers.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"submission failed: {headers[:40]!r} {payload[:200]!r}")
    finally:
        writer.close()


def _metric(text: str, name: str) -> float:
    m = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


async def _run(port: int, concurrency: int, total: int) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        reports = [
            (await client.post("/report", json=OPEN_REPORT.to_json())).json()["report_id"]
            for _ in range(concurrency)
        ]
        warm: list[float] = []
        await asyncio.gather(
            *(
                _submitter(port, reports[k], range(10**8 + k, 10**8 + 200, concurrency), warm)
                for k in range(concurrency)
            )
        )
        before = (await client.get("/metrics")).text
        latencies: list[float] = []
        t0 = time.perf_counter()
        await asyncio.gather(
            *(
                _submitter(port, reports[k], range(k, total, concurrency), latencies)
                for k in range(concurrency)
            )
        )
        elapsed = time.perf_counter() - t0
        after = await client.get("/metrics").text if False else (await client.get("/metrics")).text
    fsyncs = _metric(after, "dideban_collector_fsyncs_total") - _metric(
        before, "dideban_collector_fsyncs_total"
    )
    batches = _metric(after, "dideban_collector_commit_batches_total") - _metric(
        before, "dideban_collector_commit_batches_total"
    )
    committed = _metric(after, "dideban_collector_committed_measurements_total") - _metric(
        before, "dideban_collector_committed_measurements_total"
    )
    latencies.sort()
    return {
        "rate": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "fsyncs": fsyncs,
        "batches": batches,
        "per_batch": committed / batches if batches else 0.0,
        "n": len(latencies),
    }


def measure(concurrency: int, total: int, durable: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="collector-bench-") as tmp:
        proc = CollectorProcess(Path(tmp) / "data", free_port(), Path(tmp) / "log")
        proc.start(extra_args=() if durable else ("--no-fsync",))
        try:
            return asyncio.run(_run(proc.port, concurrency, total))
        finally:
            proc.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--concurrency", type=int, default=48)
    ap.add_argument("--total", type=int, default=20000)
    args = ap.parse_args()
    size = len(_template("x")[0]) + len(_template("x")[1])
    load = os.getloadavg()[0]
    print(
        f"collector load: {args.total} measurements of ~{size / 1024:.1f} KiB, {args.concurrency} concurrent submitters, loopback"
    )
    results = {}
    for durable in (True, False):
        r = measure(args.concurrency, args.total, durable)
        results[durable] = r
        label = "durable (fsync, group commit)" if durable else "baseline (--no-fsync)      "
        print(
            f"  {label}: {r['rate']:8.0f} measurements/s  p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms"
            + (
                f"  fsyncs {r['fsyncs']:.0f} in {r['batches']:.0f} commits, {r['per_batch']:.1f} measurements per commit"
                if durable
                else ""
            )
        )
    d, b = results[True], results[False]
    print(f"  durable / baseline throughput: {d['rate'] / b['rate']:.2f}x")
    # The machine is shared: the load average says how much CPU the run had to itself.
    print(f"  load average (1 min) before / after: {load:.2f} / {os.getloadavg()[0]:.2f}")
    goal = d["rate"] >= 2000 and d["p99"] < 50
    print(f"  goal (>= 2,000/s and p99 < 50 ms, durable): {'met' if goal else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
