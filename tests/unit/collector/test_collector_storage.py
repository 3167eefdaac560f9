"""RawStore: group commit, sealing into OONI's layout, crash recovery, idempotency index."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from dideban.collector.storage import (
    Entry,
    RawStore,
    idempotency_key,
    partition_for,
    sealed_files,
    stored_line,
)
from dideban.model.rawfile import read_bytes

NOW = dt.datetime(2026, 11, 29, 4, 30, tzinfo=dt.UTC)


def _entry(i: int, cc: str = "IR", test: str = "web_connectivity") -> Entry:
    content = {"input": f"http://site{i}.example/", "probe_cc": cc, "test_keys": {"i": i}}
    uid = f"20261129043000.000000_{cc}_{test}_{i:016x}"
    return Entry(
        key=idempotency_key("rid", content),
        uid=uid,
        partition=partition_for(NOW, cc, test),
        line=stored_line(content, uid),
        input=content["input"],
    )


def _stored(data_dir: Path) -> list[dict[str, object]]:
    out = []
    for path in sealed_files(data_dir):
        out += [json.loads(x) for x in read_bytes(path).splitlines()]
    return out


def test_commit_groups_fsyncs_and_seal_writes_ooni_layout(tmp_path: Path) -> None:
    store = RawStore(tmp_path)
    store.start()
    store.commit([_entry(i) for i in range(10)] + [_entry(99, cc="CN")])
    assert store.stats.fsyncs == 2  # one per open segment touched, not per measurement
    assert sealed_files(tmp_path) == []  # nothing visible before sealing
    store.close()
    files = sealed_files(tmp_path)
    rels = sorted(str(p.relative_to(tmp_path).parent) for p in files)
    assert rels == ["raw/20261129/04/CN/web_connectivity", "raw/20261129/04/IR/web_connectivity"]
    rows = _stored(tmp_path)
    assert len(rows) == 11
    assert all(str(r["measurement_uid"]).startswith("20261129043000.000000_") for r in rows)
    assert not any(tmp_path.joinpath("open").rglob("*.jsonl"))


def test_idempotency_index_survives_restart(tmp_path: Path) -> None:
    store = RawStore(tmp_path)
    store.start()
    e = _entry(1)
    store.commit([e])
    store.close()
    again = RawStore(tmp_path)
    again.start()
    assert again.index[e.key] == e.uid
    assert again.input_counts["http://site1.example/"] == 1


def test_crash_recovery_keeps_complete_lines_and_drops_torn_tail(tmp_path: Path) -> None:
    store = RawStore(tmp_path)
    store.start()
    store.commit([_entry(i) for i in range(5)])
    # Simulate kill -9: no close(); a half-written line is left at the end of the segment.
    (segment,) = list((tmp_path / "open").rglob("*.jsonl"))
    with open(segment, "ab") as f:
        f.write(b'deadbeef 2026_torn {"input": "http://to')
    recovered = RawStore(tmp_path)
    recovered.start()
    assert recovered.recovered == 5
    rows = _stored(tmp_path)
    assert sorted(str(r["input"]) for r in rows) == [f"http://site{i}.example/" for i in range(5)]
    assert not any(tmp_path.joinpath("open").rglob("*.jsonl"))
    # Recovery is itself repeatable: a second start changes nothing.
    before = sorted(p.name for p in sealed_files(tmp_path))
    third = RawStore(tmp_path)
    third.start()
    assert sorted(p.name for p in sealed_files(tmp_path)) == before
    assert len(_stored(tmp_path)) == 5


def test_crash_after_rename_before_unlink_is_redone_once(tmp_path: Path) -> None:
    store = RawStore(tmp_path)
    store.start()
    store.commit([_entry(i) for i in range(3)])
    (segment,) = list((tmp_path / "open").rglob("*.jsonl"))
    saved = segment.read_bytes()
    store.close()
    # As if the crash came after the sealed file was renamed into place but before the open
    # segment was deleted: the segment is still there on restart.
    segment.parent.mkdir(parents=True, exist_ok=True)
    segment.write_bytes(saved)
    again = RawStore(tmp_path)
    again.start()
    assert len(sealed_files(tmp_path)) == 1
    assert len(_stored(tmp_path)) == 3


def test_seal_due_by_size_and_hour(tmp_path: Path) -> None:
    clock = [0.0]
    store = RawStore(tmp_path, segment_max_bytes=10**9, seal_after=60, monotonic=lambda: clock[0])
    store.start()
    store.commit([_entry(1)])
    assert store.seal_due(("20261129", "04")) == 0
    clock[0] = 61.0
    assert store.seal_due(("20261129", "04")) == 1
    store.commit([_entry(2)])
    assert store.seal_due(("20261129", "05")) == 1  # the hour has passed
    store.wait_for_seals()
    assert len(sealed_files(tmp_path)) == 2


def test_failed_commit_is_cut_and_not_indexed(tmp_path: Path, monkeypatch: Any) -> None:
    import os

    store = RawStore(tmp_path)
    store.start()
    store.commit([_entry(1)])
    real_fsync = os.fsync

    def failing(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing)
    bad = _entry(2)
    try:
        store.commit([bad])
    except OSError:
        pass
    else:
        raise AssertionError("the commit should have failed")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert bad.key not in store.index
    store.commit([_entry(3)])
    store.close()
    inputs = sorted(str(r["input"]) for r in _stored(tmp_path))
    assert inputs == ["http://site1.example/", "http://site3.example/"]
