"""Benchmark: web_connectivity over a 903-URL scenario generated from ir.csv, in the lab.

Prints sites/s and total time of the probe (recording, control requests, analysis, JSONL
output), then, in the same run and through the same lab, a bare asyncio DNS+TCP+TLS+HTTP
fetch of the same URLs with the same concurrency (bench/baseline_fetch.py), and the ratio.
Goals (issue 2): all 903 sites in <= 60 s on 2 cores; probe / bare <= 1.5.

    python bench/probe_lab.py [--concurrency 64] [--blocked-fraction 0.3] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline_fetch import fetch_all
from dideban.lab import UserspaceLab, generate_scenario
from dideban.probe.cli import WebsitesRun, run_websites, serve_test_helper
from dideban.probe.testlists import load_test_list

IR_CSV = Path(__file__).resolve().parents[1] / "src" / "dideban" / "data" / "test-lists" / "ir.csv"


async def main(concurrency: int, blocked_fraction: float, seed: int) -> int:
    t0 = time.perf_counter()
    scenario = generate_scenario(IR_CSV, blocked_fraction=blocked_fraction, seed=seed)
    targets = load_test_list(IR_CSV)
    blocked_sites = sum(1 for s in scenario.sites if s.censor and s.techniques() != {"throttle"})
    print(
        f"scenario: {len(targets)} URLs, {len(scenario.sites)} sites, "
        f"{blocked_sites} censored ({blocked_sites / len(scenario.sites):.0%}), "
        f"generated in {time.perf_counter() - t0:.2f} s"
    )
    t0 = time.perf_counter()
    async with UserspaceLab(scenario) as lab:
        network = lab.network
        print(f"lab up in {time.perf_counter() - t0:.2f} s")
        async with serve_test_helper(network) as helper:
            out = Path(tempfile.mkdtemp(prefix="dideban-bench-")) / "results.jsonl"
            run = WebsitesRun(targets, out, network, helper, concurrency, show_progress=False)
            t0 = time.perf_counter()
            results = await run_websites(run)
            probe_s = time.perf_counter() - t0
        verdicts = collections.Counter(str(r.blocking) for r in results)
        print(
            f"probe: {len(results)} sites in {probe_s:.2f} s = {len(results) / probe_s:.1f} sites/s "
            f"(concurrency {concurrency}); blocking: {dict(verdicts)}; output {out} "
            f"({out.stat().st_size / 1e6:.1f} MB)"
        )
        urls = [t.url for t in targets]
        bare, bare_s = await fetch_all(
            urls, network.probe_view, network.ca_pem, dict(network.timeouts), concurrency
        )
        ok = sum(1 for b in bare if b.ok)
        print(
            f"bare fetch: {len(bare)} sites in {bare_s:.2f} s = {len(bare) / bare_s:.1f} sites/s "
            f"({ok} fetched, {len(bare) - ok} failed as censored/down)"
        )
    ratio = probe_s / bare_s if bare_s > 0 else float("inf")
    print(
        f"ratio probe/bare: {ratio:.2f}x (goal <= 1.5x); total probe time {probe_s:.1f} s (goal <= 60 s)"
    )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--blocked-fraction", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.concurrency, args.blocked_fraction, args.seed)))
