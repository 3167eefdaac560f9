"""dideban ingest / reprocess against a real DuckDB file: incremental, idempotent, crash-safe,
and safe while a reader in another process polls the store."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest
import zstandard

from dideban.ingest import ingest, reprocess
from dideban.pipeline.fingerprints import FingerprintDB, default_db
from dideban.store import Store

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "ooni-samples"
BASE = json.loads((SAMPLES / "report1.json").read_text())
SRC = str(Path(__file__).resolve().parents[3] / "src")


def msm(i: int, cc: str = "IR") -> bytes:
    doc = dict(BASE, probe_cc=cc, measurement_uid=f"20260101000000.{i:06d}_{cc}_webconnectivity_x")
    return json.dumps(doc).encode() + b"\n"


def collector_tree(root: Path, files: int, per_file: int) -> Path:
    n = 0
    for f in range(files):
        d = root / "raw" / "20260101" / f"{f % 3:02d}" / "IR" / "web_connectivity"
        d.mkdir(parents=True, exist_ok=True)
        data = b"".join(msm(n + i) for i in range(per_file))
        n += per_file
        name = d / f"part{f:03d}.jsonl.{'zst' if f % 2 else 'gz'}"
        name.write_bytes(
            zstandard.ZstdCompressor().compress(data) if f % 2 else gzip.compress(data)
        )
    return root


def counts(db: Path) -> dict[str, int]:
    with Store.open(db, read_only=True) as s:
        c = s.counts()
        dup = s.conn.execute(
            "SELECT count(*) FROM (SELECT measurement_uid FROM verdicts GROUP BY 1 HAVING count(*) > 1)"
        ).fetchone()
        c["duplicate_uids"] = int(dup[0]) if dup else -1
        return c


def test_ingest_twice_adds_nothing(tmp_path: Path) -> None:
    data = collector_tree(tmp_path / "data", files=4, per_file=25)
    (data / "extra").mkdir()
    for name in (
        "bug_351.json",
        "testmeasurement.json",
        "20230706183840.201925_PK_webconnectivity_19f5e0d803cbaea7.jsonc",
    ):
        (data / "extra" / name).write_bytes((SAMPLES / name).read_bytes())
    db = tmp_path / "s.db"
    r1 = ingest([data], db, default_db(), batch_size=30)
    first = counts(db)
    assert r1.measurements == 104 and first["verdicts"] == 104 and first["duplicate_uids"] == 0
    assert first["ingested_files"] == 7
    r2 = ingest([data], db, default_db(), batch_size=30)
    assert r2.measurements == 0 and r2.batches == 0
    assert counts(db) == first


def test_growing_files_only_new_lines(tmp_path: Path) -> None:
    plain = tmp_path / "d" / "a.jsonl"
    plain.parent.mkdir()
    plain.write_bytes(msm(1) + msm(2) + msm(3)[:40])  # the last line is still being written
    gz = tmp_path / "d" / "b.jsonl.gz"
    gz.write_bytes(gzip.compress(msm(10)))
    db = tmp_path / "s.db"
    assert ingest([tmp_path / "d"], db, default_db()).measurements == 3
    with plain.open("ab") as fh:
        fh.write(msm(3)[40:] + msm(4))
    with gz.open("ab") as fh:
        fh.write(gzip.compress(msm(11)))
    rep = ingest([tmp_path / "d"], db, default_db())
    assert rep.measurements == 3 and rep.errors == []
    c = counts(db)
    assert c["verdicts"] == 6 and c["duplicate_uids"] == 0
    with Store.open(db, read_only=True) as s:
        marks = s.watermarks()
        assert marks[str(plain.resolve())].bytes_done == plain.stat().st_size
        assert marks[str(plain.resolve())].lines_done == 4
        assert s.raw_measurement("20260101000000.000004_IR_webconnectivity_x")["probe_cc"] == "IR"  # type: ignore[index]


def test_unreadable_lines_are_reported_and_counted(tmp_path: Path) -> None:
    f = tmp_path / "d" / "x.jsonl"
    f.parent.mkdir()
    f.write_bytes(msm(1) + b"garbage\n" + msm(2))
    rep = ingest([tmp_path / "d"], tmp_path / "s.db", default_db())
    assert rep.measurements == 2 and [(e.line, e.reason[:12]) for e in rep.errors] == [
        (2, "invalid JSON")
    ]
    with Store.open(tmp_path / "s.db", read_only=True) as s:
        assert s.watermarks()[str(f.resolve())].errors == 1


def _ingest_proc(data: Path, db: Path, extra: str = "", batch: int = 20) -> subprocess.Popen[bytes]:
    code = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {SRC!r})
        from pathlib import Path
        from dideban.ingest import ingest
        from dideban.pipeline.fingerprints import default_db
        from dideban import store
        {extra}
        ingest([Path({str(data)!r})], Path({str(db)!r}), default_db(), batch_size={batch})
        """
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_killed_inside_a_transaction_then_rerun_completes(tmp_path: Path) -> None:
    data = collector_tree(tmp_path / "data", files=6, per_file=20)
    db = tmp_path / "s.db"
    # SIGKILL ourselves in the middle of the third batch's transaction (rows inserted,
    # watermarks not yet, no commit).
    extra = textwrap.dedent(
        """
        n = {"batches": 0}
        real = store.Store._insert
        def insert(self, table, cls, rows):
            real(self, table, cls, rows)
            if table == "verdicts":
                n["batches"] += 1
                if n["batches"] == 3:
                    os.kill(os.getpid(), signal.SIGKILL)
        store.Store._insert = insert
        """
    ).replace("\n", "\n        ")
    p = _ingest_proc(data, db, extra)
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL
    partial = counts(db)
    assert partial["verdicts"] == 40 and partial["duplicate_uids"] == 0  # two whole batches
    rep = ingest([data], db, default_db(), batch_size=20)
    assert rep.measurements == 80
    final = counts(db)
    assert final["verdicts"] == final["measurements"] == 120 and final["duplicate_uids"] == 0


def test_killed_at_a_random_moment_then_rerun_completes(tmp_path: Path) -> None:
    data = collector_tree(tmp_path / "data", files=10, per_file=40)
    db = tmp_path / "s.db"
    p = _ingest_proc(data, db, batch=10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not db.exists():
        time.sleep(0.01)
    time.sleep(0.4)
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=30)
    ingest([data], db, default_db(), batch_size=10)
    final = counts(db)
    assert (
        final["verdicts"] == 400 and final["measurements"] == 400 and final["duplicate_uids"] == 0
    )


def test_reader_polling_during_ingest_never_errors_nor_sees_half_a_batch(tmp_path: Path) -> None:
    data = collector_tree(tmp_path / "data", files=8, per_file=50)
    db = tmp_path / "s.db"
    Store.open(db).close()
    p = _ingest_proc(data, db, batch=25)
    seen: list[tuple[int, int, int]] = []
    errors: list[str] = []
    deadline = time.monotonic() + 60
    while p.poll() is None and time.monotonic() < deadline:
        try:
            with Store.open(db, read_only=True, busy_wait=10) as s:
                m, v, o = (
                    int(s.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
                    for t in ("measurements", "verdicts", "observations")
                )
                w = s.conn.execute(
                    "SELECT coalesce(sum(measurements), 0) FROM ingested_files"
                ).fetchone()
                seen.append((m, v, int(w[0]) if w else -1))
                assert o == sum(1 for _ in range(0)) or o >= 0
        except Exception as exc:
            errors.append(repr(exc))
        time.sleep(0.005)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert errors == []
    assert len(seen) >= 3
    # Every snapshot is whole batches: rows and watermarks move together, 25 at a time.
    for m, v, w in seen:
        assert m == v == w and m % 25 == 0, (m, v, w)
    assert counts(db)["verdicts"] == 400


def test_reprocess_applies_new_fingerprints_without_touching_raw(tmp_path: Path) -> None:
    data = collector_tree(tmp_path / "data", files=2, per_file=5)
    before = {
        p: hashlib.sha256(p.read_bytes()).hexdigest() for p in data.rglob("*.*") if p.is_file()
    }
    db = tmp_path / "s.db"
    ingest([data], db, default_db())
    with Store.open(db, read_only=True) as s:
        (v0,) = [v for v in [s.verdict("20260101000000.000001_IR_webconnectivity_x")] if v]
    assert not v0.anomaly and v0.fingerprints == []
    # A new local fingerprint naming a header the sample's response carries.
    fps = tmp_path / "fps"
    fps.mkdir()
    (fps / "lab.csv").write_text(
        "name,scope,other_names,location_found,pattern_type,pattern,confidence_no_fp,"
        "expected_countries,source,exp_url,notes\n"
        "lab.cache,isp,,header.x-cache,full,HIT,5,IR,lab,,\n",
        encoding="utf-8",
    )
    done, problems = reprocess(db, FingerprintDB.load([fps]))
    assert done == 10 and problems == []
    with Store.open(db, read_only=True) as s:
        v1 = s.verdict("20260101000000.000001_IR_webconnectivity_x")
        assert v1 is not None and v1.anomaly and v1.confirmed and v1.fingerprints == ["lab.cache"]
        assert s.counts()["verdicts"] == 10
    after = {
        p: hashlib.sha256(p.read_bytes()).hexdigest() for p in data.rglob("*.*") if p.is_file()
    }
    assert after == before


def test_cli_ingest_and_analyze(tmp_path: Path) -> None:
    data = collector_tree(tmp_path / "data", files=1, per_file=3)
    db = tmp_path / "s.db"
    env = dict(os.environ, PYTHONPATH=SRC)
    run = [sys.executable, "-c", "from dideban.cli import main; main()"]
    r = subprocess.run(
        [*run, "ingest", "--data-dir", str(data), "--db", str(db)],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert b"3 measurements" in r.stdout
    r = subprocess.run(
        [*run, "analyze", str(SAMPLES / "bug_351.json"), "--format", "jsonl"],
        capture_output=True,
        env=env,
        timeout=60,
    )
    row = json.loads(r.stdout)
    assert r.returncode == 0 and row["blocking_type"] == "http-failure"
    r = subprocess.run(
        [*run, "analyze", str(tmp_path / "missing.json")], capture_output=True, env=env, timeout=60
    )
    assert r.returncode == 2 and b"no such file" in r.stderr
    for since in ("yesterday", "0001-01-01T00:00:00+01:00"):  # (the second: year 0 in UTC)
        r = subprocess.run(
            [*run, "reprocess", "--db", str(db), "--since", since],
            capture_output=True,
            env=env,
            timeout=60,
        )
        assert r.returncode == 2 and b"not an ISO date" in r.stderr
    with duckdb.connect(str(db), read_only=True) as c:
        assert c.execute("SELECT count(*) FROM verdicts").fetchone() == (3,)


@pytest.mark.parametrize("fmt", ["csv", "table"])
def test_cli_analyze_formats(tmp_path: Path, fmt: str) -> None:
    env = dict(os.environ, PYTHONPATH=SRC)
    run = [sys.executable, "-c", "from dideban.cli import main; main()"]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(msm(1) + b"nope\n")
    r = subprocess.run(
        [*run, "analyze", str(bad), "--format", fmt], capture_output=True, env=env, timeout=60
    )
    assert r.returncode == 1 and f"{bad}:2: invalid JSON".encode() in r.stderr
    out = r.stdout.decode().splitlines()
    assert len(out) == 2 and "20260101000000.000001_IR_webconnectivity_x" in out[1]


def test_api_reader_polling_during_ingest_never_errors(tmp_path: Path) -> None:
    # The API's own reader (short-lived read-only connection per query, retry on the lock).
    reader_mod = pytest.importorskip("dideban.api.reader")
    data = collector_tree(tmp_path / "data", files=6, per_file=50)
    db = tmp_path / "s.db"
    Store.open(db).close()
    reader = reader_mod.Reader(db, busy_wait=10.0)
    p = _ingest_proc(data, db, batch=50)
    seen: list[tuple[int, int]] = []
    try:
        while p.poll() is None:
            rows = reader.query(
                "SELECT (SELECT count(*) FROM verdicts) AS v, (SELECT count(*) FROM measurements) AS m"
            )
            seen.append((int(rows[0]["v"]), int(rows[0]["m"])))
            time.sleep(0.005)
    finally:
        reader.close()
        _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert seen and all(v == m and v % 50 == 0 for v, m in seen)
    assert counts(db)["verdicts"] == 300


def test_a_failing_analysis_is_stored_reported_and_reprocessed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One measurement whose analysis raises (a pipeline bug, simulated) neither stops the run
    nor is lost: it is stored with a verdict that says so and reported; once the bug is gone,
    `reprocess` gives it its real verdict."""
    from dideban.pipeline import analysis

    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_bytes(b"".join(msm(i) for i in range(5)))
    db = tmp_path / "s.duckdb"
    real = analysis._web_connectivity
    bad_uid = "20260101000000.000003_IR_webconnectivity_x"

    def buggy(tk: dict[str, object], ex: object, url: str | None) -> object:
        if any(o.measurement_uid == bad_uid for o in ex.observations):  # type: ignore[attr-defined]
            raise ZeroDivisionError("simulated bug")
        return real(tk, ex, url)  # type: ignore[arg-type]

    monkeypatch.setattr(analysis, "_web_connectivity", buggy)
    rep = ingest([data], db, default_db())
    assert rep.measurements == 5
    assert rep.errors == []
    assert [(e.line, e.reason) for e in rep.analysis_failed] == [
        (4, "ZeroDivisionError: simulated bug")
    ]
    with Store.open(db, read_only=True) as s:
        rows = s.conn.execute(
            "SELECT measurement_uid, failure, rules FROM verdicts ORDER BY 1"
        ).fetchall()
        obs = s.conn.execute(
            "SELECT count(*) FROM observations WHERE measurement_uid = ?", [bad_uid]
        ).fetchone()
    assert [r[0] for r in rows] == sorted(r[0] for r in rows) and len(rows) == 5
    bad = [r for r in rows if r[0] == bad_uid]
    assert bad == [(bad_uid, True, ["pipeline.analysis_failed"])]
    assert all(r[2] != ["pipeline.analysis_failed"] for r in rows if r[0] != bad_uid)
    assert obs == (0,)

    monkeypatch.setattr(analysis, "_web_connectivity", real)
    done, problems = reprocess(db, default_db())
    assert (done, problems) == (5, [])
    with Store.open(db, read_only=True) as s:
        fixed = s.conn.execute(
            "SELECT rules FROM verdicts WHERE measurement_uid = ?", [bad_uid]
        ).fetchone()
        obs = s.conn.execute(
            "SELECT count(*) FROM observations WHERE measurement_uid = ?", [bad_uid]
        ).fetchone()
    assert fixed is not None and fixed[0] != ["pipeline.analysis_failed"]
    assert obs is not None and obs[0] > 0


@pytest.mark.parametrize("block", [300, 5000, 8 << 20])
def test_plain_files_read_in_blocks_ingest_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """A plain JSONL file is read a block at a time (memory stays flat): lines that straddle
    blocks, blank and bad lines, a last line still being written, and the watermarks come out
    as when it is read at once; so does a second run after the file grew."""
    from dideban.pipeline import readers

    monkeypatch.setattr(readers, "BLOCK_SIZE", block)
    f = tmp_path / "d" / "a.jsonl"
    f.parent.mkdir()
    parts = [msm(0), b"\n", b"garbage\n", msm(1)[:100] + b"\n"]
    parts += [msm(i) for i in range(2, 12)]
    f.write_bytes(b"".join(parts) + msm(12)[:50])  # the last line is still being written
    db = tmp_path / "s.db"
    rep = ingest([f.parent], db, default_db(), batch_size=5)
    assert rep.measurements == 11
    assert [e.line for e in rep.errors] == [3, 4]
    with Store.open(db, read_only=True) as s:
        mark = s.watermarks()[str(f.resolve())]
        lines = dict(
            s.conn.execute("SELECT measurement_uid, raw_line FROM measurements").fetchall()
        )
    assert (mark.bytes_done, mark.lines_done) == (f.stat().st_size - 50, len(parts))
    assert mark.complete and mark.errors == 2 and mark.measurements == 11
    assert sorted(lines.values()) == [1, *range(5, 15)]
    # Every stored line number points at its measurement in the file.
    text = f.read_bytes().split(b"\n")
    for uid, n in lines.items():
        assert json.loads(text[n - 1])["measurement_uid"] == uid
    with f.open("ab") as fh:
        fh.write(msm(12)[50:] + msm(13))
    rep2 = ingest([f.parent], db, default_db(), batch_size=5)
    assert rep2.measurements == 2 and rep2.errors == []
    assert counts(db)["verdicts"] == 13 and counts(db)["duplicate_uids"] == 0
    with Store.open(db, read_only=True) as s:
        mark = s.watermarks()[str(f.resolve())]
    assert (mark.bytes_done, mark.lines_done) == (f.stat().st_size, len(parts) + 2)
