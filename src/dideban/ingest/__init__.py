"""Ingest: reads raw measurements, runs the pipeline and writes the store (sits on both).

`ingest(paths, db)` is incremental and idempotent. For every input file the store keeps a
watermark (`ingested_files`): for a plain `.jsonl` the byte offset just past the last complete
line read, for a compressed one the number of complete lines read, for a `.json`/`.jsonc` file
its size and mtime. A rerun reads only what is new (appended lines of a growing file, new
files); a file whose size and mtime did not change is skipped. Rows and watermarks of a batch
are committed in ONE transaction, and each batch opens and closes the file (see
`dideban.store` for why readers can then work alongside), so a crash loses at most the batch
in flight and the next run redoes exactly that batch. A measurement seen again (the same uid,
e.g. a .json file rewritten) replaces its rows, never duplicates them.

Memory: a plain `.jsonl` is read a block at a time (`readers.jsonl_blocks`), the measurements
of a batch keeping the blocks of their lines. A compressed file is decompressed
whole: a gzip member or zstd frame is used only once it is complete and its checksum holds,
so the largest member sets the memory needed.

`reprocess(db)` recomputes observations and verdicts from the raw files the store points to,
after rules or fingerprints changed; the raw files are only read.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from dideban.ingest.categories import CategoryIndex
from dideban.model.rawfile import is_jsonl, read_bytes
from dideban.model.stored import IngestedFile, StoredMeasurement
from dideban.model.verdict import Observation, Verdict
from dideban.pipeline.analysis import analyze
from dideban.pipeline.fingerprints import FingerprintDB
from dideban.pipeline.readers import (
    RawMeasurement,
    ReadError,
    iter_files,
    iter_lines,
    jsonl_blocks,
    read_file,
)
from dideban.store import Batch, Store


@dataclass
class IngestReport:
    files_seen: int = 0
    files_read: int = 0
    measurements: int = 0
    batches: int = 0
    errors: list[ReadError] = field(default_factory=list)  # measurements that cannot be read
    # Measurements whose analysis failed (a bug): stored with a verdict that says so.
    analysis_failed: list[ReadError] = field(default_factory=list)


def stored_of(raw: RawMeasurement, verdict: Verdict) -> StoredMeasurement:
    assert verdict.measurement_uid == raw.uid
    return StoredMeasurement.of_verdict(verdict, raw.path, raw.line, raw.index, raw.uid_derived)


_T = TypeVar("_T")


@dataclass
class _Chunk:
    """Measurements read from one file up to a new watermark."""

    raws: list[RawMeasurement]
    errors: list[ReadError]
    mark: IngestedFile


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _chunks(path: Path, old: IngestedFile | None, chunk: int) -> Iterator[_Chunk]:
    st = path.stat()
    if (
        old is not None
        and old.complete
        and old.size == st.st_size
        and old.mtime_ns == st.st_mtime_ns
    ):
        return
    p = str(path)

    def mark_at(
        bytes_done: int, lines: int, ms: int, errs: int, complete: bool = True
    ) -> IngestedFile:
        return IngestedFile(
            p, st.st_size, st.st_mtime_ns, bytes_done, lines, ms, errs, _now(), complete
        )

    if not is_jsonl(path):
        items = list(read_file(path))
        raws = [r for r in items if isinstance(r, RawMeasurement)]
        errs = [r for r in items if isinstance(r, ReadError)]
        mark = mark_at(st.st_size, 0, len(raws), len(errs))
        yield _Chunk(raws, errs, mark)
        return
    plain = not path.name.endswith((".gz", ".zst"))
    lines_done = old.lines_done if old else 0
    prev_m = old.measurements if old else 0
    prev_e = old.errors if old else 0
    regions: Iterable[tuple[bytes | bytearray, int, int, int]]
    if plain:
        offset = old.bytes_done if old and old.bytes_done <= st.st_size else 0
        if offset == 0:
            lines_done, prev_m, prev_e = 0, 0, 0
        # Whole lines only: a last line without its newline is left for a later run.
        regions = (
            (buf, 0, stop, base)
            for buf, stop, base, whole in jsonl_blocks(path, offset, st.st_size - offset)
            if whole
        )
    else:
        data = read_bytes(path)
        start = _after_lines(data, lines_done)
        if start is None:
            return  # fewer complete lines than before: nothing new
        regions = [(data, start, data.rfind(b"\n") + 1, 0)]

    def runs() -> Iterator[tuple[list[RawMeasurement | ReadError], int, int]]:
        """(what they hold, how many lines, the file offset just past them) of the runs of
        at most `chunk` whole lines, each read before the next."""
        line = lines_done + 1
        for buf, start, stop, base in regions:
            for a, b, n in _groups(buf, start, stop, chunk):
                yield list(iter_lines(buf, p, line, start=a, stop=b - 1)), n, base + b
                line += n

    for (items, n, end), last in _with_last(runs()):
        raws = [r for r in items if isinstance(r, RawMeasurement)]
        errs = [r for r in items if isinstance(r, ReadError)]
        lines_done += n
        prev_m += len(raws)
        prev_e += len(errs)
        mark = mark_at(end if plain else 0, lines_done, prev_m, prev_e, complete=last)
        yield _Chunk(raws, errs, mark)


def _after_lines(data: bytes, lines: int) -> int | None:
    """The offset just past the first `lines` newlines of data; None if it has fewer."""
    pos = 0
    for _ in range(lines):
        end = data.find(b"\n", pos)
        if end < 0:
            return None
        pos = end + 1
    return pos


def _groups(
    buf: bytes | bytearray, start: int, stop: int, chunk: int
) -> Iterator[tuple[int, int, int]]:
    """buf[start:stop] (whole lines) in runs of at most `chunk` lines: (start, stop, lines),
    each stop just past a newline."""
    pos = start
    while pos < stop:
        end = pos
        n = 0
        while n < chunk and end < stop:
            end = buf.find(b"\n", end, stop) + 1
            n += 1
        yield pos, end, n
        pos = end


def _with_last(items: Iterator[_T]) -> Iterator[tuple[_T, bool]]:
    """Each item, and whether it is the last."""
    it = iter(items)
    try:
        prev = next(it)
    except StopIteration:
        return
    for item in it:
        yield prev, False
        prev = item
    yield prev, True


_CATEGORIES: CategoryIndex | None = None


def _categorize(verdict: Verdict) -> None:
    """Fill the verdict's category from the Citizen Lab lists (measurements don't carry it)."""
    global _CATEGORIES
    if verdict.category_code is None:
        if _CATEGORIES is None:
            _CATEGORIES = CategoryIndex.load()
        verdict.category_code = _CATEGORIES.lookup(verdict.input, verdict.probe_cc)


def _analysis_error(raw: RawMeasurement, error: str) -> ReadError:
    return ReadError(raw.path, raw.line, error)


def _derive(
    raws: Iterable[RawMeasurement], fpdb: FingerprintDB, failed: list[ReadError]
) -> tuple[list[StoredMeasurement], list[Observation], list[Verdict]]:
    """Rows of these measurements; a failed analysis is stored (its verdict says so) and
    listed in `failed`."""
    by_uid: dict[str, RawMeasurement] = {}
    for r in raws:
        by_uid[r.uid] = r  # the last copy of a uid wins within a batch
    ms: list[StoredMeasurement] = []
    obs: list[Observation] = []
    vs: list[Verdict] = []
    for raw in by_uid.values():
        a = analyze(raw, fpdb)
        if a.error is not None:
            failed.append(_analysis_error(raw, a.error))
        _categorize(a.verdict)
        ms.append(stored_of(raw, a.verdict))
        obs.extend(a.observations)
        vs.append(a.verdict)
    return ms, obs, vs


def ingest(
    paths: Iterable[Path],
    db: Path,
    fpdb: FingerprintDB,
    *,
    batch_size: int = 2000,
    on_batch: Callable[[int], None] | None = None,
) -> IngestReport:
    """Load new measurements under `paths` into the store at `db` (see module docstring)."""
    report = IngestReport()
    with Store.open(db) as store:
        marks = store.watermarks()
    pending: list[RawMeasurement] = []
    pending_marks: dict[str, IngestedFile] = {}

    def flush() -> None:
        if not pending and not pending_marks:
            return
        ms, obs, vs = _derive(pending, fpdb, report.analysis_failed)
        with Store.open(db) as store:
            store.write_batch(Batch(ms, obs, vs, list(pending_marks.values())))
        report.batches += 1
        report.measurements += len(ms)
        pending.clear()
        pending_marks.clear()
        if on_batch is not None:
            on_batch(report.batches)

    for path in iter_files(paths):
        report.files_seen += 1
        resolved = path.resolve()
        read_any = False
        try:
            # Lazily: a big file is read, analysed and committed one chunk at a time.
            for c in _chunks(resolved, marks.get(str(resolved)), batch_size):
                read_any = True
                pending.extend(c.raws)
                report.errors.extend(c.errors)
                pending_marks[c.mark.path] = c.mark
                if len(pending) >= batch_size:
                    flush()
        except OSError as exc:
            report.errors.append(ReadError(str(path), None, f"cannot read: {exc}"))
        if read_any:
            report.files_read += 1
    flush()
    return report


def reprocess(
    db: Path,
    fpdb: FingerprintDB,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    batch_size: int = 2000,
) -> tuple[int, list[str]]:
    """Recompute observations and verdicts of the stored measurements in [since, until).
    Returns (measurements redone, problems: measurements whose raw file is gone, and those
    whose analysis failed, stored as such)."""
    with Store.open(db) as store:
        stored = store.stored_measurements(since, until)
    by_file: dict[str, list[StoredMeasurement]] = {}
    for m in stored:
        by_file.setdefault(m.raw_path, []).append(m)
    problems: list[str] = []
    done = 0
    obs: list[Observation] = []
    vs: list[Verdict] = []

    def flush() -> None:
        nonlocal done
        if vs:
            with Store.open(db) as store:
                store.replace_derived(obs, vs)
            done += len(vs)
            obs.clear()
            vs.clear()

    for raw_path, wanted in by_file.items():
        keys = {(m.raw_line, m.raw_index): m for m in wanted}
        p = Path(raw_path)
        if not os.path.exists(p):
            problems.extend(f"{m.measurement_uid}: {raw_path} is gone" for m in wanted)
            continue
        found = 0
        for item in read_file(p):
            if not isinstance(item, RawMeasurement):
                continue
            if (item.line, item.index) not in keys:
                continue
            found += 1
            a = analyze(item, fpdb)
            if a.error is not None:
                failure = _analysis_error(item, a.error)
                problems.append(f"analysis failed (stored as such): {failure}")
            _categorize(a.verdict)
            obs.extend(a.observations)
            vs.append(a.verdict)
            if len(vs) >= batch_size:
                flush()
        if found < len(keys):
            problems.append(f"{raw_path}: {len(keys) - found} stored measurement(s) not found")
    flush()
    return done, problems
