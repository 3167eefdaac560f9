"""Durable raw storage, laid out like OONI's archive: `raw/YYYYMMDD/HH/CC/testname/*.jsonl.zst`.

A measurement is acknowledged only once it is on disk. The write path:

1. Each partition (receive hour, probe_cc, test_name) has one *open segment*, a plain
   append-only file under `open/` (mirroring the raw layout). A batch of submissions is
   appended with one write per segment and one `fsync` per segment touched (group commit:
   every submission that arrived while the previous fsync ran shares the next one). Only
   then is any of them acknowledged.
2. An open segment is *sealed* when it is older than `seal_after` seconds, larger than
   `segment_max_bytes` (16 MiB), its hour has passed, or the collector shuts down: its lines are
   compressed into `raw/.../<segment>.jsonl.zst.tmp`, fsynced, renamed into place (atomic),
   the directory fsynced, their idempotency keys appended to `index.log` (fsynced), and
   only then the open segment is deleted. Every step can be redone: a crash at any point
   leaves the open segment, which the next start seals again to the same name.
3. After a crash, each open segment's complete lines are recovered; a torn last line (no
   newline) was never fsynced as a whole, hence never acknowledged, and is dropped.

Open-segment line: `<key> <measurement_uid> <stored JSON>\\n`, where key is the sha256 of the
report id and the canonical JSON of the submitted content (the idempotency key).

Sealed line (what the pipeline reads): the measurement JSON exactly as submitted, with a
top-level `measurement_uid` added, one per line: OONI's own convention in its jsonl files.

`index.log` line: `<key> <measurement_uid> <input as JSON>\\n`. `reports.log` keeps each
opened and closed report (JSON lines), so both survive a restart.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson
import zstandard

from dideban.collector.validate import ReportInfo

DEFAULT_SEGMENT_MAX_BYTES: Final = 16 * 1024 * 1024
DEFAULT_SEAL_AFTER: Final = 30.0


def idempotency_key(report_id: str, content: dict[str, Any]) -> str:
    """sha256 of the report id and the content's canonical JSON (sorted keys, compact), so
    that a resubmission is recognised whatever its key order or whitespace."""
    h = hashlib.sha256(report_id.encode("utf-8"))
    h.update(b"\n")
    h.update(orjson.dumps(content, option=orjson.OPT_SORT_KEYS))
    return h.hexdigest()


def stored_line(content: dict[str, Any], uid: str) -> bytes:
    """The measurement as submitted (same keys, same order) plus `measurement_uid`: compact
    UTF-8 JSON on one line (JSON strings never contain a raw newline)."""
    doc = dict(content)
    doc["measurement_uid"] = uid
    return orjson.dumps(doc)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs_durable(path: Path, stop: Path) -> None:
    """Create `path` and fsync every parent whose entry changed, up to `stop`."""
    missing: list[Path] = []
    p = path
    while not p.exists() and p != stop:
        missing.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    for created in missing:
        _fsync_dir(created.parent)


@dataclass(frozen=True)
class Partition:
    day: str  # YYYYMMDD
    hour: str  # HH
    probe_cc: str
    test_name: str

    def rel(self) -> Path:
        return Path(self.day, self.hour, self.probe_cc, self.test_name)


@dataclass
class Entry:
    """One measurement to commit."""

    key: str
    uid: str
    partition: Partition
    line: bytes
    input: Any


@dataclass
class Segment:
    partition: Partition
    path: Path  # under open/
    fd: int
    created: float
    size: int = 0
    entries: list[tuple[str, str, Any]] = field(default_factory=list)


@dataclass
class CommitStats:
    fsyncs: int = 0
    batches: int = 0
    measurements: int = 0
    fsync_seconds: list[float] = field(default_factory=list)
    sealed: int = 0


class RawStore:
    """The collector's storage. Not thread-safe: one writer thread calls every method
    except the read-only lookups of `index`, `reports` and `input_counts`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        segment_max_bytes: int = DEFAULT_SEGMENT_MAX_BYTES,
        seal_after: float = DEFAULT_SEAL_AFTER,
        monotonic: Callable[[], float] = time.monotonic,
        durable: bool = True,
    ) -> None:
        self.data_dir = data_dir
        self.raw_dir = data_dir / "raw"
        self.open_dir = data_dir / "open"
        self.index_path = data_dir / "index.log"
        self.reports_path = data_dir / "reports.log"
        self.segment_max_bytes = segment_max_bytes
        self.seal_after = seal_after
        self._monotonic = monotonic
        self._durable = durable
        self.index: dict[str, str] = {}
        self.input_counts: Counter[str] = Counter()
        self.reports: dict[str, ReportInfo] = {}
        self.closed: set[str] = set()
        self._segments: dict[Partition, Segment] = {}
        self.stats = CommitStats()
        self.recovered = 0
        self.unreadable = 0
        self._sealer = ThreadPoolExecutor(1, thread_name_prefix="collector-sealer")
        self._seal_jobs: list[Future[None]] = []

    # --- start and stop --------------------------------------------------------------

    def start(self) -> None:
        """Create the layout, load the index and reports, and seal what a crash left open."""
        for d in (self.data_dir, self.raw_dir, self.open_dir):
            d.mkdir(parents=True, exist_ok=True)
        for tmp in self.raw_dir.rglob("*.jsonl.zst.tmp"):
            tmp.unlink()  # a seal cut short by a crash; its open segment is sealed again below
        self._load_index()
        self._load_reports()
        for path in sorted(self.open_dir.rglob("*.jsonl")):
            self._recover_segment(path)

    def close(self) -> None:
        """Seal every open segment and wait for all seals to finish."""
        for seg in list(self._segments.values()):
            self._retire(seg)
        self._sealer.shutdown(wait=True)
        for job in self._seal_jobs:
            job.result()  # re-raise a seal's error: its segment stays in open/ for next start
        self._seal_jobs.clear()

    def wait_for_seals(self) -> None:
        """Block until every segment retired so far is sealed."""
        for job in list(self._seal_jobs):
            job.result()

    def _retire(self, seg: Segment) -> None:
        """Stop writing to `seg` and seal it in the sealer thread: compressing a large
        segment takes a while, and commits must not wait for it."""
        if self._segments.get(seg.partition) is seg:
            del self._segments[seg.partition]
        self._seal_jobs = [j for j in self._seal_jobs if not j.done() or j.exception()]
        self._seal_jobs.append(self._sealer.submit(self._seal, seg))

    def _load_index(self) -> None:
        if not self.index_path.exists():
            return
        data = self.index_path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        for raw in complete.splitlines():
            parts = raw.split(b" ", 2)
            if len(parts) != 3:
                continue
            key, uid = parts[0].decode(), parts[1].decode()
            if key not in self.index:
                self.index[key] = uid
                self._count_input(json.loads(parts[2]))
        if len(complete) != len(data):  # torn tail of index.log: its segment is redone
            with open(self.index_path, "r+b") as f:
                f.truncate(len(complete))

    def _load_reports(self) -> None:
        if not self.reports_path.exists():
            return
        for raw in self.reports_path.read_bytes().splitlines():
            try:
                rec = json.loads(raw)
            except ValueError:
                continue  # a torn last line: that open/close was never acknowledged
            rid = rec["report_id"]
            if rec["op"] == "open":
                self.reports[rid] = ReportInfo(
                    rid, rec["test_name"], rec["probe_cc"], rec["probe_asn"]
                )
            elif rec["op"] == "close":
                self.closed.add(rid)

    def _recover_segment(self, path: Path) -> None:
        data = path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        entries: list[tuple[str, str, Any]] = []
        for raw in complete.splitlines():
            try:
                key_b, uid_b, line = raw.split(b" ", 2)
                doc = orjson.loads(line)
            except ValueError:
                self.unreadable += 1  # never acknowledged (its commit failed): skip it
                continue
            entries.append((key_b.decode(), uid_b.decode(), doc.get("input")))
        rel = path.relative_to(self.open_dir).parent
        day, hour, cc, test = rel.parts
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        if len(complete) != len(data):
            os.ftruncate(fd, len(complete))
            os.fsync(fd)
        seg = Segment(Partition(day, hour, cc, test), path, fd, 0.0, len(complete), entries)
        for key, uid, inp in entries:
            if key not in self.index:
                self.index[key] = uid
                self._count_input(inp)
        self.recovered += len(entries)
        self._seal(seg)

    # --- reports ---------------------------------------------------------------------

    def record_report(self, op: str, report: ReportInfo) -> None:
        rec = {
            "op": op,
            "report_id": report.report_id,
            "test_name": report.test_name,
            "probe_cc": report.probe_cc,
            "probe_asn": report.probe_asn,
        }
        line = json.dumps(rec, separators=(",", ":")).encode() + b"\n"
        self._append_durable(self.reports_path, line)
        if op == "open":
            self.reports[report.report_id] = report
        else:
            self.closed.add(report.report_id)

    def _append_durable(self, path: Path, data: bytes) -> None:
        new = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            if self._durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if new and self._durable:
            _fsync_dir(path.parent)

    # --- the write path --------------------------------------------------------------

    def commit(self, entries: Iterable[Entry]) -> None:
        """Append `entries` to their open segments and fsync each segment once."""
        touched: dict[Partition, tuple[Segment, list[bytes]]] = {}
        batch = list(entries)
        for e in batch:
            seg = self._segments.get(e.partition)
            if seg is None or seg.size >= self.segment_max_bytes:
                if seg is not None:
                    self._retire(seg)
                seg = self._new_segment(e.partition)
            item = touched.setdefault(e.partition, (seg, []))
            item[1].append(b"%s %s %s\n" % (e.key.encode(), e.uid.encode(), e.line))
        sizes = {p: seg.size for p, (seg, _) in touched.items()}
        started = time.perf_counter()
        try:
            for seg, lines in touched.values():
                data = b"".join(lines)
                view = memoryview(data)
                while view:
                    n = os.write(seg.fd, view)
                    view = view[n:]
                seg.size += len(data)
            started = time.perf_counter()
            if self._durable:
                for seg, _ in touched.values():
                    os.fsync(seg.fd)
                    self.stats.fsyncs += 1
        except OSError:
            # Disk full or I/O error: none of this batch is acknowledged. Cut what was
            # written, so that the next line does not land after a torn one.
            for p, (seg, _) in touched.items():
                seg.size = sizes[p]
                try:
                    os.ftruncate(seg.fd, sizes[p])
                except OSError:
                    self._segments.pop(p, None)  # recovery keeps its complete lines
            raise
        self.stats.fsync_seconds.append(time.perf_counter() - started)
        self.stats.batches += 1
        self.stats.measurements += len(batch)
        for e in batch:
            self._segments[e.partition].entries.append((e.key, e.uid, e.input))
            if e.key not in self.index:
                self.index[e.key] = e.uid
                self._count_input(e.input)

    def _new_segment(self, partition: Partition) -> Segment:
        d = self.open_dir / partition.rel()
        _makedirs_durable(d, self.open_dir)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
        name = f"{stamp}_{partition.probe_cc}_{partition.test_name}_{secrets.token_hex(4)}"
        path = d / f"{name}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        if self._durable:
            _fsync_dir(d)
        seg = Segment(partition, path, fd, self._monotonic())
        self._segments[partition] = seg
        return seg

    def seal_due(self, now_partition_hour: tuple[str, str]) -> int:
        """Seal segments that are old, large, or of an hour that has passed."""
        due = [
            seg
            for seg in self._segments.values()
            if self._monotonic() - seg.created >= self.seal_after
            or seg.size >= self.segment_max_bytes
            or (seg.partition.day, seg.partition.hour) != now_partition_hour
        ]
        for seg in due:
            self._retire(seg)
        return len(due)

    def _seal(self, seg: Segment) -> None:
        os.close(seg.fd)
        known = {uid.encode() for _, uid, _ in seg.entries}
        if known:
            target_dir = self.raw_dir / seg.partition.rel()
            _makedirs_durable(target_dir, self.raw_dir)
            target = target_dir / (seg.path.stem + ".jsonl.zst")
            tmp = target.with_name(target.name + ".tmp")
            # Streamed line by line in ~1 MiB chunks: the sealer thread then holds the GIL
            # only briefly at a time, and commits running meanwhile are not stalled.
            with open(seg.path, "rb") as src, open(tmp, "wb") as f:
                writer = zstandard.ZstdCompressor(level=3).stream_writer(f, closefd=False)
                chunk: list[bytes] = []
                size = 0
                for raw in src:
                    if not raw.endswith(b"\n"):
                        break  # a torn tail: never acknowledged
                    parts = raw.split(b" ", 2)
                    if len(parts) == 3 and parts[1] in known:  # skips a failed commit's lines
                        chunk.append(parts[2])
                        size += len(parts[2])
                    if size >= 1 << 20:
                        writer.write(b"".join(chunk))
                        chunk, size = [], 0
                writer.write(b"".join(chunk))
                writer.flush(zstandard.FLUSH_FRAME)
                f.flush()
                if self._durable:
                    os.fsync(f.fileno())
            os.replace(tmp, target)
            if self._durable:
                _fsync_dir(target_dir)
            index_lines = b"".join(
                b"%s %s %s\n" % (k.encode(), u.encode(), json.dumps(i).encode())
                for k, u, i in seg.entries
            )
            self._append_durable(self.index_path, index_lines)
        seg.path.unlink()
        if self._durable:
            _fsync_dir(seg.path.parent)
        self.stats.sealed += 1

    def _count_input(self, inp: Any) -> None:
        if isinstance(inp, str):
            self.input_counts[inp] += 1


def partition_for(now: dt.datetime, probe_cc: str, test_name: str) -> Partition:
    utc = now.astimezone(dt.UTC)
    return Partition(utc.strftime("%Y%m%d"), utc.strftime("%H"), probe_cc, test_name)


def sealed_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "raw").rglob("*.jsonl.zst"))
