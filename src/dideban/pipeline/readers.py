# cython: annotation_typing=False
"""Reading OONI-format measurements from files and folders.

Accepted: `.json` (one object, a JSON array of objects, or, as some OONI tools write, JSONL
under a .json name), `.jsonc` (JSON with `//` comments), `.jsonl`, `.jsonl.gz`, `.jsonl.zst`,
and folders, recursively (the collector's `raw/YYYYMMDD/HH/CC/testname/*.jsonl.zst|.gz`).
A file holding only `test_keys` (as probe-cli's testdata) is wrapped in an envelope whose
test_name is inferred from its keys.

A measurement that cannot be read becomes a `ReadError` (file, line, reason); reading goes on.

Measurement uids: a measurement without `measurement_uid` gets `derived_` + the first 32 hex
digits of the SHA-256 of its canonical JSON (keys sorted, no spaces, UTF-8). The same content
always gets the same uid, wherever and however often it is read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from dideban.model.rawfile import is_jsonl, is_raw_file, read_bytes, strip_jsonc
from dideban.pipeline import _native
from dideban.pipeline.fields import PRUNE_SPEC


class RawMeasurement:
    """One measurement read from a file.

    `doc` is the whole measurement. `view` is what the analysis reads: the same dict, or,
    for a measurement read from JSONL, the measurement decoded with only the keys of
    `fields.PRUNE_SPEC` (the whole text is still parsed and checked). Then the whole `doc` is
    decoded on first use, and from then on `view` is `doc` (so changes made to it count)."""

    __slots__ = ("_doc", "_text", "index", "line", "path", "uid", "uid_derived", "view")

    def __init__(
        self,
        doc: dict[str, Any],
        uid: str,
        uid_derived: bool,
        path: str,
        line: int | None = None,  # 1-based line in a JSONL file
        index: int | None = None,  # 0-based position in a JSON array
        *,
        text: bytes | memoryview | None = None,  # with a pruned `doc`: the whole JSON text
    ) -> None:
        self.view = doc
        self.uid = uid
        self.uid_derived = uid_derived
        self.path = path
        self.line = line
        self.index = index
        self._text = text
        self._doc: dict[str, Any] | None = None if text is not None else doc

    @property
    def doc(self) -> dict[str, Any]:
        if self._doc is None:
            assert self._text is not None
            whole = _native.decode_raw(self._text)  # orjson, else json
            self._doc = self.view = whole
            self._text = None
        return self._doc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RawMeasurement):
            return NotImplemented
        return (self.uid, self.uid_derived, self.path, self.line, self.index, self.doc) == (
            other.uid,
            other.uid_derived,
            other.path,
            other.line,
            other.index,
            other.doc,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it was

    def __repr__(self) -> str:
        return f"RawMeasurement(uid={self.uid!r}, path={self.path!r}, line={self.line!r})"


# A RawMeasurement of a line read pruned, from its slots' values in the order of __slots__
# (what __init__ stores given `text`: `_doc` None), written directly: one is made for each
# measurement read, and the class's call with its keyword costs ~10x as much.
_new_raw = _native.SlotMaker(RawMeasurement, RawMeasurement.__slots__)
if RawMeasurement.__slots__ != (
    "_doc",
    "_text",
    "index",
    "line",
    "path",
    "uid",
    "uid_derived",
    "view",
):
    raise ImportError("RawMeasurement's slots changed: update iter_lines's call of _new_raw")
# Per line: a name of this module, not an attribute of another read at each call.
_decode_pruned = _native.decode_pruned


@dataclass
class ReadError:
    path: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.reason}"


def derive_uid(doc: dict[str, Any]) -> str:
    canon = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "derived_" + hashlib.sha256(canon.encode("utf-8")).hexdigest()[:32]


_WC_KEYS = ("control", "blocking", "accessible", "dns_consistency")


def _wrap_test_keys(doc: dict[str, Any]) -> dict[str, Any]:
    """An envelope around a bare `test_keys` object (probe-cli testdata)."""
    test_name = "web_connectivity" if any(k in doc for k in _WC_KEYS) else "unknown"
    return {"test_name": test_name, "test_keys": doc, "x_dideban_test_keys_only": True}


def measurement_of(
    obj: Any, path: str, line: int | None, index: int | None
) -> RawMeasurement | ReadError:
    if not isinstance(obj, dict):
        return ReadError(
            path, line, f"a measurement must be a JSON object, not {type(obj).__name__}"
        )
    # An exact dict, as JSON decodes objects (the analysis reads the envelope as one).
    doc = obj if type(obj) is dict else dict(obj)
    if "test_keys" not in doc and "test_name" not in doc:
        if any(k in doc for k in (*_WC_KEYS, "requests", "queries", "tcp_connect")):
            doc = _wrap_test_keys(doc)
        else:
            return ReadError(path, line, "not an OONI measurement (no test_name nor test_keys)")
    uid = doc.get("measurement_uid")
    if isinstance(uid, str) and uid:
        return RawMeasurement(doc, uid, False, path, line, index)
    return RawMeasurement(doc, derive_uid(obj), True, path, line, index)


def iter_lines(
    data: bytes | bytearray,
    path: str,
    first_line: int = 1,
    *,
    start: int = 0,
    stop: int | None = None,
) -> Generator[RawMeasurement | ReadError, None, int]:
    """Measurements from JSONL bytes; line numbers start at `first_line`.

    Each line is decoded pruned (`fields.PRUNE_SPEC`, by the compiled decoder) straight from
    a slice of a memoryview, without a copy. A line that decoder does not take (invalid JSON,
    NaN, lone surrogates), or that is not an OONI measurement with a measurement_uid, is
    decoded whole by orjson, then by the standard parser (which is lenient where orjson is
    strict), and these decide what is read and what error is reported.

    `start`, `stop`: read data[start:stop] only (start at the beginning of a line). Each
    measurement read pruned keeps a view of its line in `data` (which must not change while
    it lives). Returns the number the next line would have."""
    view = memoryview(data)
    find = data.find
    size = len(data) if stop is None else stop
    pos = start
    n = first_line
    while pos <= size:
        end = find(b"\n", pos, size)
        if end < 0:
            end = size
        if end > pos:
            text = view[pos:end]
            try:
                pruned = _decode_pruned(text, PRUNE_SPEC)
            except ValueError:
                pruned = None
            if type(pruned) is dict and ("test_keys" in pruned or "test_name" in pruned):
                uid = pruned.get("measurement_uid")
                if type(uid) is str and uid:
                    # RawMeasurement(pruned, uid, False, path, n, text=...), its slots written
                    # in the order of __slots__.
                    yield _new_raw(None, text, None, n, path, uid, False, pruned)
                    pos, n = end + 1, n + 1
                    continue
            try:
                obj = orjson.loads(text)
            except orjson.JSONDecodeError:
                raw = data[pos:end]
                if not raw.strip():
                    pos, n = end + 1, n + 1
                    continue
                # orjson is strict (no NaN, no lone surrogates): the standard parser decides.
                try:
                    obj = json.loads(raw)
                except ValueError as exc:
                    yield ReadError(path, n, f"invalid JSON: {exc}")
                    pos, n = end + 1, n + 1
                    continue
            yield measurement_of(obj, path, n, None)
        pos, n = end + 1, n + 1
    return n


# Plain JSONL is read in blocks of this size: memory stays flat whatever the file's size, and
# the blocks' pages are reused (reading a whole 1 GB file into fresh memory costs more time in
# the kernel, faulting its pages in, than parsing it): each block is a buffer of its own, freed
# with the last measurement that holds a view of it, and the allocator hands its memory to a
# block after the next. A block this small stays in the CPU's cache between the copy from the
# kernel and the parse (0.3 us a measurement less than with 8 MB blocks); a longer line grows
# the buffer.
BLOCK_SIZE = 256 << 10


def jsonl_blocks(
    path: Path, offset: int = 0, size: int | None = None
) -> Iterator[tuple[bytearray, int, int, bool]]:
    """A plain JSONL file's bytes from `offset` (`size` of them, else to its end), a block at
    a time, each in a buffer of its own that is never written again once yielded (views of
    it stay valid): (buf, stop, base, whole) with buf[:stop] read from the file at offset
    `base`. With `whole`, buf[:stop] is whole lines, the last newline included; the partial
    line after it starts the next block. Last, where the bytes do not end with a newline,
    the line left over (`whole` False)."""
    buf = _native.new_buffer(BLOCK_SIZE)
    view = memoryview(buf)
    filled = 0  # bytes in buf: the partial line left from the block before, then what is read
    base = offset
    left = size
    with path.open("rb") as fh:
        if offset:
            fh.seek(offset)
        while True:
            if filled == len(buf):  # a line longer than the buffer
                view.release()
                buf.extend(bytes(len(buf)))
                view = memoryview(buf)
            room = len(buf) - filled if left is None else min(len(buf) - filled, left)
            got = fh.readinto(view[filled : filled + room]) if room else 0
            if got == 0:
                if filled:
                    yield buf, filled, base, False
                return
            if left is not None:
                left -= got
            filled += got
            cut = buf.rfind(b"\n", 0, filled) + 1
            if cut == 0:
                continue
            yield buf, cut, base, True
            # The next block in a buffer of its own, starting with the partial line.
            rest = filled - cut
            new = _native.new_buffer(len(buf))
            new[:rest] = view[cut:filled]
            view.release()
            buf, view = new, memoryview(new)
            filled = rest
            base += cut


def _read_jsonl_blocks(path: Path, p: str) -> Iterator[RawMeasurement | ReadError]:
    """`iter_lines` over a plain JSONL file, block by block (`jsonl_blocks`); each
    measurement keeps a view of its line in its block."""
    line = 1
    for buf, stop, _base, whole in jsonl_blocks(path):
        # (Without its newline: buf[stop - 1] is one when the block is whole lines.)
        line = yield from iter_lines(buf, p, line, stop=stop - 1 if whole else stop)


def read_file(path: Path) -> Iterator[RawMeasurement | ReadError]:
    p = str(path)
    if path.name.endswith(".jsonl"):
        try:
            yield from _read_jsonl_blocks(path, p)
        except OSError as exc:
            yield ReadError(p, None, f"cannot read: {exc}")
        return
    try:
        data = read_bytes(path)
    except OSError as exc:
        yield ReadError(p, None, f"cannot read: {exc}")
        return
    if is_jsonl(path):
        yield from iter_lines(data, p)
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield ReadError(p, None, f"not UTF-8: {exc}")
        return
    if path.name.endswith(".jsonc"):
        text = strip_jsonc(text)
    try:
        doc = json.loads(text)
    except ValueError as exc:
        if text.count("\n") > 1:
            # JSONL written under a .json name (e.g. oonireport testdata).
            yield from iter_lines(data, p)
            return
        yield ReadError(p, None, f"invalid JSON: {exc}")
        return
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            yield measurement_of(item, p, None, i)
    else:
        yield measurement_of(doc, p, None, None)


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Raw files under the given paths, sorted. A collector data folder (it has `raw/` and
    `open/`) is read through `raw/` only: open segments are still being written and are
    sealed into `raw/` later."""
    for path in paths:
        if path.is_dir():
            if (path / "raw").is_dir() and (path / "open").is_dir():
                path = path / "raw"
            for sub in sorted(path.rglob("*")):
                if sub.is_file() and is_raw_file(sub):
                    yield sub
        else:
            yield path


def read_paths(paths: Iterable[Path]) -> Iterator[RawMeasurement | ReadError]:
    for f in iter_files(paths):
        if not f.exists():
            yield ReadError(str(f), None, "no such file")
            continue
        yield from read_file(f)
