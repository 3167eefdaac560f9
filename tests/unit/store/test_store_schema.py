"""The store: schema generated from the model, atomic batches, raw read-back, read-only."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
from pathlib import Path

import pytest

from dideban.model.stored import IngestedFile, StoredMeasurement
from dideban.model.verdict import Observation, Verdict
from dideban.store import TABLES, Batch, Store, StoreError, table_ddl

T = dt.datetime(2026, 1, 2, 3, 4, 5)


def verdict(uid: str, **kw: object) -> Verdict:
    return Verdict(uid, "r", "http://x/", "x", "IR", "AS1", "web_connectivity", T, **kw)  # type: ignore[arg-type]


def stored(
    uid: str, path: Path, line: int | None = None, index: int | None = None
) -> StoredMeasurement:
    return StoredMeasurement(
        uid, "r", "http://x/", "IR", "AS1", "web_connectivity", T, str(path), line, index
    )


def test_columns_are_the_dataclass_fields_in_order(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as s:
        for name, cls in TABLES.items():
            cols = [r[0] for r in s.conn.execute(f"DESCRIBE {name}").fetchall()]
            assert cols == [f.name for f in dataclasses.fields(cls)], name
        types = dict(
            s.conn.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name='verdicts'"
            ).fetchall()
        )
    assert types["fingerprints"] == "VARCHAR[]" and types["anomaly"] == "BOOLEAN"
    assert types["measurement_start_time"] == "TIMESTAMP" and types["dns_ok"] == "DOUBLE"
    assert "fingerprints VARCHAR[]" in table_ddl("observations", Observation)


def test_batch_roundtrip_and_replace_not_duplicate(tmp_path: Path) -> None:
    raw = tmp_path / "m.jsonl"
    raw.write_text('{"a": 1}\n{"b": 2}\n')
    b = Batch(
        [stored("u1", raw, 1), stored("u2", raw, 2)],
        [Observation("u1", 0, "dns", fingerprints=["f"]), Observation("u2", 0, "http")],
        [verdict("u1", fingerprints=["f"], rules=["wc.x"]), verdict("u2")],
        [IngestedFile(str(raw), 1, 2, 3, 2, 2, 0, T)],
    )
    with Store.open(tmp_path / "s.db") as s:
        s.write_batch(b)
        s.write_batch(b)
        assert s.counts() == {
            "measurements": 2,
            "observations": 2,
            "verdicts": 2,
            "ingested_files": 1,
        }
        v = s.verdict("u1")
        assert v == verdict("u1", fingerprints=["f"], rules=["wc.x"])
        assert s.raw_measurement("u2") == {"b": 2}
        assert s.raw_measurement("nope") is None
        assert s.watermarks()[str(raw)].lines_done == 2


def test_failed_batch_writes_nothing(tmp_path: Path) -> None:
    raw = tmp_path / "m.jsonl"
    raw.write_text("{}\n")
    bad_verdict = dataclasses.replace(verdict("u1"), dns_ok="not a number")
    # The measurements insert succeeds, then the verdicts insert fails: all rolled back.
    bad = Batch([stored("u1", raw, 1)], [Observation("u1", 0, "dns")], [bad_verdict])
    with Store.open(tmp_path / "s.db") as s:
        with pytest.raises(Exception):  # noqa: B017 - any conversion error will do
            s.write_batch(bad)
        assert s.counts() == {
            "measurements": 0,
            "observations": 0,
            "verdicts": 0,
            "ingested_files": 0,
        }
        s.write_batch(Batch([], [], [verdict("u3")]))
        assert s.counts()["verdicts"] == 1


def test_raw_read_back_from_every_container(tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"k": 1}))
    arr = tmp_path / "arr.json"
    arr.write_text(json.dumps([{"k": 0}, {"k": 1}]))
    gz = tmp_path / "g.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"k": "g1"}\n{"k": "g2"}\n'))
    jc = tmp_path / "c.jsonc"
    jc.write_text('// c\n{"k": "c"}\n')
    with Store.open(tmp_path / "s.db") as s:
        s.write_batch(
            Batch(
                [stored("o", one), stored("a", arr, None, 1), stored("g", gz, 2), stored("c", jc)]
            )
        )
        assert s.raw_measurement("o") == {"k": 1}
        assert s.raw_measurement("a") == {"k": 1}
        assert s.raw_measurement("g") == {"k": "g2"}
        assert s.raw_measurement("c") == {"k": "c"}
        gz.unlink()
        assert s.raw_measurement("g") is None


def test_read_only_cannot_write_and_missing_store_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Store.open(tmp_path / "none.db", read_only=True)
    Store.open(tmp_path / "s.db").close()
    with Store.open(tmp_path / "s.db", read_only=True) as s:
        with pytest.raises(StoreError, match="read-only"):
            s.write_batch(Batch([], [], [verdict("u")]))
        assert s.counts()["verdicts"] == 0


def test_not_a_store_file_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "junk.db"
    f.write_bytes(b"this is not duckdb" * 100)
    with pytest.raises(StoreError):
        Store.open(f)
    assert f.read_bytes() == b"this is not duckdb" * 100


def test_stored_measurements_time_window(tmp_path: Path) -> None:
    raw = tmp_path / "m.jsonl"
    raw.write_text("{}\n")
    m2 = dataclasses.replace(
        stored("late", raw, 1), measurement_start_time=T + dt.timedelta(days=2)
    )
    with Store.open(tmp_path / "s.db") as s:
        s.write_batch(Batch([stored("early", raw, 1), m2]))
        got = s.stored_measurements(since=T + dt.timedelta(days=1))
        assert [m.measurement_uid for m in got] == ["late"]
        assert [
            m.measurement_uid for m in s.stored_measurements(until=T + dt.timedelta(days=1))
        ] == ["early"]
