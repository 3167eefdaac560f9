"""The probe's on-disk queue of measurements waiting for the collector, and its uploads log.

Layout of a queue directory:
- `pending/<entry>.json`: one scrubbed measurement and where it goes (collector URL, report
  parameters, report id once one is assigned). Written atomically: a temporary file, fsync,
  rename, fsync of the directory; a crash leaves either the whole entry or nothing.
- `rejected/<entry>.json`: entries the collector refused with a 4xx (kept, with the error,
  never retried).
- `uploads.jsonl`: one line per uploaded measurement with its `measurement_uid`.

An entry is removed only after the collector returned a uid for it, so every entry is
uploaded at least once; the collector's idempotency (same report id and content -> same uid)
makes it exactly once even when a reply is lost.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dideban.model.report import OpenReport


def default_queue_dir() -> Path:
    """`$DIDEBAN_STATE_DIR/queue`, else `~/.local/state/dideban/queue`."""
    env = os.environ.get("DIDEBAN_STATE_DIR")
    base = Path(env) if env else Path.home() / ".local" / "state" / "dideban"
    return base / "queue"


@dataclass
class QueueEntry:
    name: str
    collector_url: str
    report: OpenReport
    report_id: str | None
    measurement: dict[str, Any]
    queued_at: str
    attempts: int = 0
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "collector_url": self.collector_url,
            "report": self.report.__dict__,
            "report_id": self.report_id,
            "measurement": self.measurement,
            "queued_at": self.queued_at,
            "attempts": self.attempts,
            "last_error": self.last_error,
        }

    @classmethod
    def from_json(cls, name: str, doc: dict[str, Any]) -> QueueEntry:
        return cls(
            name=name,
            collector_url=doc["collector_url"],
            report=OpenReport(**doc["report"]),
            report_id=doc.get("report_id"),
            measurement=doc["measurement"],
            queued_at=doc["queued_at"],
            attempts=int(doc.get("attempts", 0)),
            last_error=doc.get("last_error"),
        )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class MeasurementQueue:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pending_dir = directory / "pending"
        self.rejected_dir = directory / "rejected"
        self.uploads_path = directory / "uploads.jsonl"

    def _ensure(self) -> None:
        for d in (self.pending_dir, self.rejected_dir):
            d.mkdir(parents=True, exist_ok=True)

    def put(
        self,
        collector_url: str,
        report: OpenReport,
        report_id: str | None,
        measurement: dict[str, Any],
        error: str | None = None,
    ) -> QueueEntry:
        """Append one measurement, durably. Entry names sort in queueing order."""
        self._ensure()
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{secrets.token_hex(6)}"
        entry = QueueEntry(name, collector_url, report, report_id, measurement, _now(), 0, error)
        self.save(entry)
        return entry

    def save(self, entry: QueueEntry) -> None:
        data = json.dumps(entry.to_json(), separators=(",", ":")).encode()
        _write_atomic(self.pending_dir / f"{entry.name}.json", data)

    def pending(self) -> list[QueueEntry]:
        return list(self._read(self.pending_dir))

    def rejected(self) -> list[QueueEntry]:
        return list(self._read(self.rejected_dir))

    def _read(self, d: Path) -> Iterator[QueueEntry]:
        if not d.is_dir():
            return
        for path in sorted(d.glob("*.json")):
            try:
                doc = json.loads(path.read_bytes())
                yield QueueEntry.from_json(path.stem, doc)
            except (OSError, ValueError, KeyError, TypeError):
                continue  # unreadable entries are left in place for a human to look at

    def remove(self, entry: QueueEntry) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.pending_dir / f"{entry.name}.json").unlink()
        _fsync_dir(self.pending_dir)

    def reject(self, entry: QueueEntry, error: str) -> None:
        self._ensure()
        entry.last_error = error
        data = json.dumps(entry.to_json(), separators=(",", ":")).encode()
        _write_atomic(self.rejected_dir / f"{entry.name}.json", data)
        self.remove(entry)

    def log_upload(self, uid: str, report_id: str, measurement: dict[str, Any], via: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        rec = {
            "measurement_uid": uid,
            "report_id": report_id,
            "test_name": measurement.get("test_name"),
            "input": measurement.get("input"),
            "measurement_start_time": measurement.get("measurement_start_time"),
            "uploaded_at": _now(),
            "via": via,
        }
        with open(self.uploads_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def uploads(self) -> list[dict[str, Any]]:
        if not self.uploads_path.exists():
            return []
        out = []
        for line in self.uploads_path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out
