"""Readers: every container format, folders in the collector's layout, errors with their
place, deterministic derived uids, and (hypothesis) garbage never crashes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dideban.pipeline.readers import (
    RawMeasurement,
    ReadError,
    derive_uid,
    iter_lines,
    read_file,
    read_paths,
)

M1 = {
    "measurement_uid": "20260101000000.000000_IR_webconnectivity_aaaa",
    "test_name": "web_connectivity",
    "test_keys": {},
}
M2 = {"test_name": "signal", "probe_cc": "IR", "test_keys": {"failure": None}}


def lines(*docs: object) -> bytes:
    return b"".join(json.dumps(d).encode() + b"\n" for d in docs)


def good(items: list[RawMeasurement | ReadError]) -> list[RawMeasurement]:
    return [i for i in items if isinstance(i, RawMeasurement)]


def test_collector_layout_all_compressions(tmp_path: Path) -> None:
    base = tmp_path / "raw" / "20260101" / "03" / "IR" / "web_connectivity"
    base.mkdir(parents=True)
    (base / "a.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines(M1)))
    (base / "b.jsonl.gz").write_bytes(gzip.compress(lines(M2)))
    (base / "c.jsonl").write_bytes(lines(M2, M1))
    (base / "ignored.txt").write_text("not a measurement")
    got = list(read_paths([tmp_path]))
    assert all(isinstance(g, RawMeasurement) for g in got)
    assert [(Path(g.path).name, g.line) for g in good(got)] == [
        ("a.jsonl.zst", 1), ("b.jsonl.gz", 1), ("c.jsonl", 1), ("c.jsonl", 2),
    ]  # fmt: skip


def test_zstd_and_gzip_multi_frame_and_truncated_tail(tmp_path: Path) -> None:
    z = tmp_path / "m.jsonl.zst"
    c = zstandard.ZstdCompressor()
    whole = c.compress(lines(M1)) + c.compress(lines(M2))
    z.write_bytes(whole + c.compress(lines(M2))[:7])  # a frame still being written
    assert len(good(list(read_file(z)))) == 2
    g = tmp_path / "m.jsonl.gz"
    g.write_bytes(
        gzip.compress(lines(M1)) + gzip.compress(lines(M2)) + gzip.compress(lines(M1))[:12]
    )
    assert len(good(list(read_file(g)))) == 2


def test_json_object_array_and_jsonc(tmp_path: Path) -> None:
    (tmp_path / "one.json").write_text(json.dumps(M1))
    (tmp_path / "arr.json").write_text(json.dumps([M1, M2, 3]))
    (tmp_path / "c.jsonc").write_text(
        '// a comment\n{"test_name": "x", // trailing\n "test_keys": {"u": "http://a//b"}}\n'
    )
    one = good(list(read_file(tmp_path / "one.json")))
    assert one[0].uid == M1["measurement_uid"] and one[0].line is None and one[0].index is None
    arr = list(read_file(tmp_path / "arr.json"))
    assert [getattr(a, "index", None) for a in arr[:2]] == [0, 1]
    assert isinstance(arr[2], ReadError) and "JSON object" in arr[2].reason
    (c,) = good(list(read_file(tmp_path / "c.jsonc")))
    assert c.doc["test_keys"]["u"] == "http://a//b"  # // inside a string is kept


def test_bad_lines_are_reported_with_place_and_the_rest_go_on(tmp_path: Path) -> None:
    f = tmp_path / "x.jsonl"
    f.write_bytes(lines(M1) + b"{not json\n" + b'"a string"\n' + b'{"foo": 1}\n' + lines(M2))
    got = list(read_file(f))
    errs = [g for g in got if isinstance(g, ReadError)]
    assert [(e.line, e.reason.split(":")[0]) for e in errs] == [
        (2, "invalid JSON"),
        (3, "a measurement must be a JSON object, not str"),
        (4, "not an OONI measurement (no test_name nor test_keys)"),
    ]
    assert str(errs[0]).startswith(f"{f}:2: ")
    assert [g.line for g in good(got)] == [1, 5]


def test_missing_file_and_non_utf8(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe{")
    got = list(read_paths([tmp_path / "nope.json", tmp_path / "bad.json"]))
    assert [type(g).__name__ for g in got] == ["ReadError", "ReadError"]
    assert "no such file" in got[0].reason and "UTF-8" in got[1].reason  # type: ignore[union-attr]


def test_derived_uid_is_deterministic_and_content_based() -> None:
    a = good(list(iter_lines(lines(M2), "p1")))[0]
    b = good(list(iter_lines(b"\n" + lines(M2), "p2")))[0]
    assert a.uid_derived and a.uid == b.uid == derive_uid(M2)
    assert a.uid.startswith("derived_") and len(a.uid) == len("derived_") + 32
    other = dict(M2, probe_cc="DE")
    assert derive_uid(other) != a.uid


def test_test_keys_only_file_is_wrapped(tmp_path: Path) -> None:
    (tmp_path / "tk.json").write_text(
        json.dumps({"control": {}, "requests": [], "blocking": False})
    )
    (m,) = good(list(read_file(tmp_path / "tk.json")))
    assert m.doc["test_name"] == "web_connectivity" and m.doc["test_keys"]["blocking"] is False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(st.binary(max_size=60), st.text(max_size=60).map(str.encode)), max_size=8)
)
def test_garbage_lines_never_crash_and_are_reported(chunks: list[bytes]) -> None:
    data = b"\n".join(c.replace(b"\n", b" ") for c in chunks)
    got = list(iter_lines(data, "g.jsonl"))
    nonblank = [c for c in data.split(b"\n") if c.strip()]
    assert len(got) == len(nonblank)  # every non-blank line is either read or reported
    for g in got:
        assert isinstance(g, RawMeasurement | ReadError)
        if isinstance(g, ReadError):
            assert g.line is not None and g.reason


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_files_never_crash(blob: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for name in ("g.json", "g.jsonc", "g.jsonl.gz", "g.jsonl.zst"):
            p = Path(d) / name
            p.write_bytes(blob)
            for g in read_file(p):
                assert isinstance(g, RawMeasurement | ReadError)


def test_collector_open_segments_are_not_read(tmp_path: Path) -> None:
    sealed = tmp_path / "raw" / "20260101" / "00" / "IR" / "signal"
    sealed.mkdir(parents=True)
    (sealed / "s.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines(M1)))
    (tmp_path / "open").mkdir()
    (tmp_path / "open" / "seg.jsonl.zst").write_bytes(
        zstandard.ZstdCompressor().compress(lines(M2))
    )
    got = good(list(read_paths([tmp_path])))
    assert [Path(g.path).name for g in got] == ["s.jsonl.zst"]
