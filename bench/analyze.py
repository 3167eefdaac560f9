"""Benchmark: how fast the pipeline reads, derives observations and decides verdicts, against
how fast OONI's own data models (`oonidata==0.3.0`) merely PARSE the same corpus.

The corpus replicates every measurement in tests/fixtures/ooni-samples (envelopes only; the
0.5 MB mbx-1.json is left out so one odd file does not dominate) and the committed lab run
(tests/unit/pipeline/data/lab_iran_websites.jsonl) to at least --n measurements in one JSONL
file, each copy with its own measurement_uid, report_id and measurement_start_time. Both sides run single-process on the same file
in the same run, so the figures are per core; the ratio is what counts (the machine is shared).
Rates are measurements per CPU second of the process (time.process_time: other load on a
shared machine does not count against either side); wall-clock rates are printed beside.

The speed of a shared machine drifts by 10-20% within minutes, and more between neighbours'
bursts: a whole run of one side, then of the other, puts that drift into the ratio. So the
corpus is cut into segments (`--segment` measurements each, 5,000 by default) and the two
sides take turns segment by segment (dideban on segment 1, oonidata on segment 1, oonidata on
segment 2, dideban on segment 2, ...: each goes first every other time), oonidata in one
process kept running for the whole run. A round is the whole corpus; its rate for each side
is all of its measurements over all of its CPU time. This is done `--rounds` times, and the
ratio is that of the two sides' median rates (each round's ratio is printed too).

The baseline is oonidata's `from_dict` on each line, decoded with orjson (what oonidata's own
dataclient uses to read measurements; the stdlib `json.loads` rate is printed too, it is
slower). Measurements oonidata fails to parse (legacy formats it rejects) count in its rate,
with the time spent on them; our side reads and analyses all of them.

oonidata runs in an isolated venv, ~/.cache/dideban/oonidata-venv (created on first use with
`python -m venv` + `pip install oonidata==0.3.0`), never in the main environment.

    python bench/analyze.py [--n 100000] [--rounds 3] [--segment 5000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "tests" / "fixtures" / "ooni-samples"
LAB = ROOT / "tests" / "unit" / "pipeline" / "data" / "lab_iran_websites.jsonl"
VENV = Path.home() / ".cache" / "dideban" / "oonidata-venv"
SKIP = {"mbx-1.json", "webconnectivity_0.5.26_IT_full.analysis_classic.json"}

OONIDATA_PARSE = r"""
import gc, json, sys, time
import orjson
gc.set_threshold(100_000, 50, 100)
from oonidata.models.nettests import NETTEST_MODELS, BaseMeasurement
loads = orjson.loads if sys.argv[1] == "orjson" else json.loads
clock = time.perf_counter
# One file a line on stdin (one segment of the corpus); one line of figures back for each.
for request in sys.stdin:
    ok = failed = 0
    failed_s = 0.0
    t0, c0 = clock(), time.process_time()
    with open(request.rstrip("\n"), "rb") as fh:
        for line in fh:
            s = clock()
            d = loads(line)
            cls = NETTEST_MODELS.get(d.get("test_name"), BaseMeasurement)
            try:
                cls.from_dict(d)
                ok += 1
            except Exception:
                failed += 1
                failed_s += clock() - s
    print(json.dumps({"ok": ok, "failed": failed, "failed_seconds": failed_s,
                      "seconds": clock() - t0, "cpu_seconds": time.process_time() - c0}),
          flush=True)
"""


def corpus_docs() -> list[dict[str, object]]:
    sys.path.insert(0, str(ROOT / "src"))
    from dideban.pipeline.readers import RawMeasurement, read_paths

    docs: list[dict[str, object]] = []
    for item in read_paths([SAMPLES, LAB]):
        if (
            isinstance(item, RawMeasurement)
            and Path(item.path).name not in SKIP
            and not item.doc.get("x_dideban_test_keys_only")
        ):
            docs.append(item.doc)
    return docs


def build(folder: Path, n: int, segment: int) -> tuple[list[Path], int, int]:
    """The corpus in JSONL files of `segment` measurements each, in order: (their paths, the
    measurements written, the distinct measurements copied)."""
    docs = corpus_docs()
    paths: list[Path] = []
    written = 0
    start = dt.datetime(2026, 1, 1)
    while written < n:
        path = folder / f"corpus-{len(paths):04d}.jsonl"
        paths.append(path)
        with path.open("w", encoding="utf-8") as fh:
            for _ in range(min(segment, n - written)):
                d = docs[written % len(docs)]
                # Each copy its own uid, report and start time (as real data has: caches
                # keyed on these must not make the copies cheaper than real measurements).
                when = start + dt.timedelta(seconds=7 * written)
                copy = dict(
                    d,
                    measurement_uid=f"bench_{written:09d}",
                    report_id=f"{when:%Y%m%dT%H%M%SZ}_webconnectivity_ZZ_0_n1_{written:016d}",
                    measurement_start_time=f"{when:%Y-%m-%d %H:%M:%S}",
                )
                fh.write(json.dumps(copy, separators=(",", ":")) + "\n")
                written += 1
    return paths, written, len(docs)


def ensure_venv() -> Path:
    py = VENV / "bin" / "python"
    if not py.exists():
        VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "oonidata==0.3.0"], check=True)
    return py


def run_dideban(path: Path) -> dict[str, float]:
    """One file read and analysed: its figures (n, observations, seconds, cpu_seconds)."""
    from dideban.pipeline.analysis import analyze
    from dideban.pipeline.fingerprints import default_db
    from dideban.pipeline.readers import RawMeasurement, read_paths

    db = default_db()
    # Fewer young-generation collections while millions of small objects are made (both
    # sides of the comparison run with this setting; `dideban analyze`/`ingest` use it too).
    gc.set_threshold(100_000, 50, 100)
    n = obs = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for item in read_paths([path]):
        if isinstance(item, RawMeasurement):
            a = analyze(item, db)
            n += 1
            obs += len(a.observations)
    return {
        "n": n,
        "observations": obs,
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
    }


def add(total: dict[str, float], figures: dict[str, float]) -> None:
    """Adds one segment's figures to a round's."""
    for key, value in figures.items():
        total[key] = total.get(key, 0) + value


def run_read_only(paths: list[Path]) -> tuple[int, float]:
    """The reading part alone (files, lines, the pruned decode): where the time goes."""
    from dideban.pipeline.readers import RawMeasurement, read_paths

    n = 0
    c0 = time.process_time()
    for item in read_paths(paths):
        if isinstance(item, RawMeasurement):
            n += 1
    return n, time.process_time() - c0


class Oonidata:
    """oonidata's parse in its venv, one process for the whole run: `parse(path)` has it
    parse one file and returns its figures (ok, failed, failed_seconds, seconds,
    cpu_seconds)."""

    def __init__(self, py: Path, loader: str) -> None:
        self.proc = subprocess.Popen(
            [str(py), "-c", OONIDATA_PARSE, loader],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def parse(self, path: Path) -> dict[str, float]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the oonidata process ended (exit code {self.proc.wait()})")
        figures: dict[str, float] = json.loads(line)
        return figures

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="measurements in the corpus")
    ap.add_argument("--rounds", type=int, default=3, help="passes over the corpus")
    ap.add_argument("--segment", type=int, default=5_000, help="measurements a turn")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.n < 1 or args.segment < 1:
        ap.error("--n and --segment must be at least 1")
    sys.path.insert(0, str(ROOT / "src"))
    py = ensure_venv()
    with tempfile.TemporaryDirectory() as folder:
        paths, n, distinct = build(Path(folder), args.n, args.segment)
        size = sum(p.stat().st_size for p in paths)
        print(
            f"corpus: {n} measurements ({distinct} distinct), {size / 1e6:.0f} MB JSONL,"
            f" {len(paths)} segments taken in turns"
        )
        ours: list[float] = []
        base: list[float] = []
        oonidata = Oonidata(py, "orjson")
        try:
            for r in range(1, args.rounds + 1):
                d: dict[str, float] = {}
                o: dict[str, float] = {}
                sides = ((d, run_dideban), (o, oonidata.parse))
                for k, path in enumerate(paths):
                    for figures, run in sides if k % 2 == 0 else sides[::-1]:
                        add(figures, run(path))
                ours.append(d["n"] / d["cpu_seconds"])
                total = o["ok"] + o["failed"]
                base.append(total / o["cpu_seconds"])
                print(
                    f"round {r}: dideban read+observations+verdict: {d['n']:.0f} in"
                    f" {d['seconds']:.1f} s wall, {d['cpu_seconds']:.1f} s CPU ="
                    f" {ours[-1]:,.0f} msm/s per core (CPU), {d['n'] / d['seconds']:,.0f} wall"
                    f" ({d['observations']:.0f} observations)"
                )
                print(
                    f"round {r}: oonidata 0.3.0 parse only (orjson.loads): {o['ok']:.0f} ok,"
                    f" {o['failed']:.0f} failed ({o['failed_seconds']:.1f} s of it in failed"
                    f" parses, counted), in {o['seconds']:.1f} s wall, {o['cpu_seconds']:.1f} s"
                    f" CPU = {base[-1]:,.0f} msm/s per core (CPU), {total / o['seconds']:,.0f}"
                    f" wall; ratio {ours[-1] / base[-1]:.2f}x"
                )
        finally:
            oonidata.close()
        read_n, read_cpu = run_read_only(paths)
        ours_median = statistics.median(ours)
        us = 1e6 / ours_median
        print(
            f"  per measurement: {us:.1f} us (median round), of which reading (file, lines,"
            f" pruned decode) {read_cpu / read_n * 1e6:.1f} us, observations and verdict"
            f" {us - read_cpu / read_n * 1e6:.1f} us (reading timed on its own)"
        )
        slow_parser = Oonidata(py, "json")
        j: dict[str, float] = {}
        try:
            for path in paths:
                add(j, slow_parser.parse(path))
        finally:
            slow_parser.close()
        slow = (j["ok"] + j["failed"]) / j["cpu_seconds"]
        print(f"oonidata 0.3.0 parse only (json.loads, once): {slow:,.0f} msm/s per core (CPU)")
        base_median = statistics.median(base)
        per_round = ", ".join(f"{a / b:.2f}x" for a, b in zip(ours, base, strict=True))
        print(
            f"ratio dideban / oonidata parse, per core (CPU time), medians of {args.rounds}"
            f" rounds: {ours_median:,.0f} / {base_median:,.0f} msm/s ="
            f" {ours_median / base_median:.2f}x against orjson.loads (the baseline; oonidata's"
            f" own loader; per round: {per_round}), {ours_median / slow:.2f}x against"
            f" json.loads (goal >= 3x)"
        )


if __name__ == "__main__":
    main()
