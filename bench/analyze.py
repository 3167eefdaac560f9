"""Benchmark: how fast the pipeline reads, derives observations and decides verdicts, against
how fast OONI's own data models (`oonidata==0.3.0`) merely PARSE the same corpus.

The corpus replicates every measurement in tests/fixtures/ooni-samples (envelopes only; the
0.5 MB mbx-1.json is left out so one odd file does not dominate) and the committed lab run
(tests/unit/pipeline/data/lab_iran_websites.jsonl) to at least --n measurements in one JSONL
file, each copy with its own measurement_uid. Both sides run single-process on the same file
in the same run, so the figures are per core; the ratio is what counts (the machine is shared).

oonidata runs in an isolated venv, ~/.cache/dideban/oonidata-venv (created on first use with
`python -m venv` + `pip install oonidata==0.3.0`), never in the main environment.

    python bench/analyze.py [--n 100000]
"""

from __future__ import annotations

import argparse
import gc
import json
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
gc.set_threshold(100_000, 50, 100)
from oonidata.models.nettests import NETTEST_MODELS, BaseMeasurement
path = sys.argv[1]
ok = failed = 0
t0 = time.perf_counter()
with open(path, "rb") as fh:
    for line in fh:
        d = json.loads(line)
        cls = NETTEST_MODELS.get(d.get("test_name"), BaseMeasurement)
        try:
            cls.from_dict(d)
            ok += 1
        except Exception:
            failed += 1
print(json.dumps({"ok": ok, "failed": failed, "seconds": time.perf_counter() - t0}))
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


def build(path: Path, n: int) -> tuple[int, int]:
    docs = corpus_docs()
    written = 0
    with path.open("w", encoding="utf-8") as fh:
        while written < n:
            for d in docs:
                copy = dict(d, measurement_uid=f"bench_{written:09d}")
                fh.write(json.dumps(copy, separators=(",", ":")) + "\n")
                written += 1
                if written >= n:
                    break
    return written, len(docs)


def ensure_venv() -> Path:
    py = VENV / "bin" / "python"
    if not py.exists():
        VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "oonidata==0.3.0"], check=True)
    return py


def run_dideban(path: Path) -> tuple[int, int, float]:
    sys.path.insert(0, str(ROOT / "src"))
    from dideban.pipeline.analysis import analyze
    from dideban.pipeline.fingerprints import default_db
    from dideban.pipeline.readers import RawMeasurement, read_paths

    db = default_db()
    # Fewer young-generation collections while millions of small objects are made (both
    # sides of the comparison run with this setting; `dideban analyze`/`ingest` use it too).
    gc.set_threshold(100_000, 50, 100)
    n = obs = 0
    t0 = time.perf_counter()
    for item in read_paths([path]):
        if isinstance(item, RawMeasurement):
            a = analyze(item, db)
            n += 1
            obs += len(a.observations)
    return n, obs, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="measurements in the corpus")
    args = ap.parse_args()
    py = ensure_venv()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "corpus.jsonl"
        n, distinct = build(path, args.n)
        size = path.stat().st_size
        print(f"corpus: {n} measurements ({distinct} distinct), {size / 1e6:.0f} MB JSONL")
        done, obs, secs = run_dideban(path)
        ours = done / secs
        print(
            f"dideban read+observations+verdict: {done} in {secs:.1f} s = {ours:,.0f} msm/s "
            f"per core ({obs} observations)"
        )
        r = subprocess.run(
            [str(py), "-c", OONIDATA_PARSE, str(path)], capture_output=True, text=True, check=True
        )
        o = json.loads(r.stdout)
        theirs = (o["ok"] + o["failed"]) / o["seconds"]
        print(
            f"oonidata 0.3.0 parse only: {o['ok']} ok, {o['failed']} failed, in "
            f"{o['seconds']:.1f} s = {theirs:,.0f} msm/s per core"
        )
        print(f"ratio dideban / oonidata parse: {ours / theirs:.2f}x (goal >= 3x)")


if __name__ == "__main__":
    main()
