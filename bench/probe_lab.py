"""Benchmark: web_connectivity over a 903-URL scenario generated from ir.csv, in the lab.

The lab (`dideban lab up`) and the control test helper (`dideban testhelper --lab-state`) run
as their own processes, as they would for a real probe (the network and the helper are not the
probe's CPU). In this process, the probe measures every URL (recording, control requests,
analysis, JSONL output); then, in the same run, through the same lab and with the same
concurrency, a bare asyncio DNS+TCP+TLS+HTTP fetch of the same URLs (bench/baseline_fetch.py),
once with a plain DNS lookup and once with the UDP lookup's 0.5 s listening window that
web_connectivity needs to see injected replies (latency, not work). It prints sites/s and the
ratios. Goals (issue 2): all 903 sites in <= 60 s on 2 cores; probe / bare <= 1.5.

    python bench/probe_lab.py [--concurrency 64] [--blocked-fraction 0.3] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline_fetch import equivalent_all, fetch_all
from dideban.lab import generate_scenario, scenario_to_yaml
from dideban.model.labnet import LabNetwork
from dideban.probe.cli import WebsitesRun, run_websites
from dideban.probe.testlists import load_test_list

IR_CSV = Path(__file__).resolve().parents[1] / "src" / "dideban" / "data" / "test-lists" / "ir.csv"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _wait_for(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and await check():
            return
        await asyncio.sleep(0.05)
    raise SystemExit(f"{what} did not come up within {timeout:.0f} s")


async def main(concurrency: int, blocked_fraction: float, seed: int) -> int:
    t0 = time.perf_counter()
    scenario = generate_scenario(IR_CSV, blocked_fraction=blocked_fraction, seed=seed)
    targets = load_test_list(IR_CSV)
    censored = sum(1 for s in scenario.sites if s.censor and s.techniques() != {"throttle"})
    print(
        f"scenario: {len(targets)} URLs, {len(scenario.sites)} sites, {censored} censored "
        f"({censored / len(scenario.sites):.0%}), generated in {time.perf_counter() - t0:.2f} s"
    )
    work = Path(tempfile.mkdtemp(prefix="dideban-bench-"))
    scenario_file = work / "scenario.yaml"
    scenario_file.write_text(scenario_to_yaml(scenario), encoding="utf-8")
    env = {**os.environ, "DIDEBAN_STATE_DIR": str(work / "state")}
    state = work / "state" / "lab" / f"{scenario.name}.json"
    dideban = [sys.executable, "-m", "dideban"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        t0 = time.perf_counter()
        procs.append(
            subprocess.Popen(
                [*dideban, "lab", "up", "--scenario", str(scenario_file)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip

        async def lab_ready() -> bool:
            return state.exists()

        await _wait_for(lab_ready, "the lab")
        network = LabNetwork.from_json(state.read_text(encoding="utf-8"))
        print(f"lab process up in {time.perf_counter() - t0:.2f} s")
        port = _free_port()
        procs.append(
            subprocess.Popen(
                [*dideban, "testhelper", "--lab-state", str(state), "--port", str(port),
                 "--max-in-flight", str(4 * concurrency)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip

        async def helper_ready() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return False
            writer.close()
            return True

        await _wait_for(helper_ready, "the test helper")
        helper = f"http://127.0.0.1:{port}/"

        out = work / "results.jsonl"
        run = WebsitesRun(targets, out, network, helper, concurrency, show_progress=False)
        t0, c0 = time.perf_counter(), time.process_time()
        results = await run_websites(run)
        probe_s, probe_cpu = time.perf_counter() - t0, time.process_time() - c0
        verdicts = collections.Counter(str(r.blocking) for r in results)
        print(
            f"probe: {len(results)} sites in {probe_s:.2f} s = {len(results) / probe_s:.1f} "
            f"sites/s (concurrency {concurrency}, {probe_cpu:.1f} s CPU in this process); "
            f"blocking {dict(verdicts)}; "
            f"{out.stat().st_size / 1e6:.1f} MB of measurements"
        )
        sites = {s.domain: s for s in scenario.sites}
        wrong = []
        for r in results:
            expect = sites[urlsplit(r.target.url).hostname or ""].expect
            if expect is not None and (r.blocking, r.accessible) != (
                expect.blocking,
                expect.accessible,
            ):
                wrong.append((r.target.url, (r.blocking, r.accessible), expect))
        print(f"verdicts differing from the scenario's expectations: {len(wrong)}")
        for url, got, expect in wrong[:5]:
            print(f"  {url}: got {got}, expected {expect}")
        urls = [t.url for t in targets]
        timeouts = dict(network.timeouts)
        c0 = time.process_time()
        bare, bare_s = await fetch_all(
            urls, network.probe_view, network.ca_pem, timeouts, concurrency
        )
        bare_cpu = time.process_time() - c0
        ok = sum(1 for b in bare if b.ok)
        print(
            f"bare fetch: {len(bare)} sites in {bare_s:.2f} s = {len(bare) / bare_s:.1f} sites/s "
            f"({bare_cpu:.1f} s CPU; {ok} fetched, {len(bare) - ok} failed: censored or down)"
        )
        listen = timeouts.get("udp_listen_after_first", 0.5)
        _, bare_l_s = await fetch_all(
            urls, network.probe_view, network.ca_pem, timeouts, concurrency, listen_after=listen
        )
        print(
            f"bare fetch, DNS listening {listen} s after the first reply: {bare_l_s:.2f} s = "
            f"{len(bare) / bare_l_s:.1f} sites/s"
        )
        c0 = time.process_time()
        same_s = await equivalent_all(
            urls, network.probe_view, network.ca_pem, timeouts, concurrency, helper
        )
        print(
            f"same operations as web_connectivity, nothing recorded: {same_s:.2f} s = "
            f"{len(urls) / same_s:.1f} sites/s ({time.process_time() - c0:.1f} s CPU)"
        )
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    print(
        f"RESULT total probe time {probe_s:.1f} s (goal <= 60 s); probe/bare {probe_s / bare_s:.2f}x; "
        f"probe/bare-with-DNS-window {probe_s / bare_l_s:.2f}x; "
        f"probe/same-operations-unrecorded {probe_s / same_s:.2f}x (goal <= 1.5x)"
    )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--blocked-fraction", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.concurrency, args.blocked_fraction, args.seed)))
