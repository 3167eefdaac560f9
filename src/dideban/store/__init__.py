"""The embedded analytic store (one DuckDB file): raw-measurement metadata, observations,
verdicts, and ingest's per-file watermarks.

Tables (the DDL is generated from the model dataclasses, see `table_ddl`):

- `measurements` (`dideban.model.stored.StoredMeasurement`): one row per measurement, its
  envelope metadata and WHERE ITS RAW JSON LIVES (`raw_path` + `raw_line` for JSONL,
  `raw_index` for a JSON array, neither for a one-object file). The raw files are the source
  of truth and are never modified; `Store.raw_measurement(uid)` reads one back.
- `observations` (`dideban.model.verdict.Observation`): flat rows, one per DNS answer, TCP
  connect, TLS handshake, HTTP exchange, keyed by (measurement_uid, observation_idx).
- `verdicts` (`dideban.model.verdict.Verdict`): one row per measurement (measurement_uid).
- `ingested_files` (`dideban.model.stored.IngestedFile`): per input file, how far ingest read.
- `store_meta`: key/value (schema version).

Writer/reader rules (checked with duckdb 2.0.0; see tests/integration/ingest):

- DuckDB lets ONE process open a file read-write, and only while no other process has it open
  at all (a read-only open in another process fails with "Could not set lock on file" while
  the writer is connected, and vice versa). So:
- The writer (`dideban ingest`, `dideban reprocess`) opens the file read-write for ONE batch,
  writes it in ONE transaction (rows + the file watermarks), commits and closes. Between
  batches the file is free. Opening retries on the lock error for `busy_wait` seconds.
- Readers (the API) open short-lived read-only connections per query (`Store.open(path,
  read_only=True)` or `dideban.api.reader.Reader`) and retry on the lock error. A reader
  therefore sees either all of a batch or none of it, and never holds the writer off for long.
- A crash mid-batch leaves nothing: the transaction is rolled back by DuckDB's WAL replay, and
  the watermark did not move, so the next run redoes that batch (no duplicates).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import types
import typing
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from dideban.model.rawfile import load_raw
from dideban.model.stored import IngestedFile, StoredMeasurement
from dideban.model.verdict import Observation, Verdict

SCHEMA_VERSION = "1"

TABLES: dict[str, type] = {
    "measurements": StoredMeasurement,
    "observations": Observation,
    "verdicts": Verdict,
    "ingested_files": IngestedFile,
}

_SCALARS: dict[Any, str] = {
    str: "VARCHAR",
    int: "BIGINT",
    float: "DOUBLE",
    bool: "BOOLEAN",
    dt.datetime: "TIMESTAMP",
}


class StoreBusy(Exception):
    """The file stayed locked by another process for longer than we wait."""


class StoreError(Exception):
    """The store file cannot be opened or is not a Dideban store."""


def sql_type(tp: Any) -> str:
    """The DuckDB column type for a dataclass field's annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return sql_type(args[0])
    if origin is list:
        return sql_type(typing.get_args(tp)[0]) + "[]"
    if origin is typing.Literal:
        return "VARCHAR"
    return _SCALARS[tp]


def columns(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def table_ddl(name: str, cls: type) -> str:
    """`CREATE TABLE` for a model dataclass: one column per field, in field order."""
    hints = typing.get_type_hints(cls)
    cols = [f"{f.name} {sql_type(hints[f.name])}" for f in dataclasses.fields(cls)]
    return f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(cols)})"


def schema_ddl() -> list[str]:
    return [table_ddl(n, c) for n, c in TABLES.items()] + [
        "CREATE TABLE IF NOT EXISTS store_meta (key VARCHAR, value VARCHAR)"
    ]


@dataclass
class Batch:
    """Rows written together in one transaction."""

    measurements: list[StoredMeasurement] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    files: list[IngestedFile] = field(default_factory=list)


def _connect(path: Path, read_only: bool, busy_wait: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + busy_wait
    delay = 0.005
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise StoreError(f"cannot open store {path}: {exc}") from exc
            if time.monotonic() + delay > deadline:
                raise StoreBusy(f"store {path} is locked by another process") from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from exc


def _arrow_table(cls: type, rows: Sequence[Any]) -> Any:
    import pyarrow as pa

    names = columns(cls)
    data = {n: [getattr(r, n) for r in rows] for n in names}
    return pa.table(data)


class Store:
    """One connection to the store file. Use `Store.open(...)` as a context manager."""

    def __init__(self, path: Path, conn: duckdb.DuckDBPyConnection, read_only: bool) -> None:
        self.path = path
        self.conn = conn
        self.read_only = read_only

    @classmethod
    def open(cls, path: str | Path, *, read_only: bool = False, busy_wait: float = 10.0) -> Store:
        """Open (and, read-write, create) the store; retries while another process holds it."""
        p = Path(path)
        if read_only and not p.exists():
            raise StoreError(f"store {p} does not exist")
        conn = _connect(p, read_only, busy_wait)
        store = cls(p, conn, read_only)
        if not read_only:
            store._ensure_schema()
        return store

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def _ensure_schema(self) -> None:
        for ddl in schema_ddl():
            self.conn.execute(ddl)
        have = self.conn.execute(
            "SELECT value FROM store_meta WHERE key = 'schema_version'"
        ).fetchall()
        if not have:
            self.conn.execute(
                "INSERT INTO store_meta VALUES ('schema_version', ?)", [SCHEMA_VERSION]
            )
        elif have[0][0] != SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has schema {have[0][0]}, this version writes {SCHEMA_VERSION}"
            )

    # -- writer -------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.conn.execute("BEGIN TRANSACTION")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _insert(self, table: str, cls: type, rows: Sequence[Any]) -> None:
        if not rows:
            return
        tbl = _arrow_table(cls, rows)  # noqa: F841 (DuckDB reads the local by name)
        cols = ", ".join(columns(cls))
        self.conn.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM tbl")

    def _write(self, batch: Batch) -> None:
        """Insert a batch; rows of measurements already stored are replaced, not duplicated."""
        uids = sorted(
            {m.measurement_uid for m in batch.measurements}
            | {v.measurement_uid for v in batch.verdicts}
        )
        if uids:
            import pyarrow as pa

            del_uids = pa.table({"u": uids})  # noqa: F841
            for table in ("measurements", "observations", "verdicts"):
                self.conn.execute(
                    f"DELETE FROM {table} WHERE measurement_uid IN (SELECT u FROM del_uids)"
                )
        self._insert("measurements", StoredMeasurement, batch.measurements)
        self._insert("observations", Observation, batch.observations)
        self._insert("verdicts", Verdict, batch.verdicts)
        for f in batch.files:
            self.conn.execute("DELETE FROM ingested_files WHERE path = ?", [f.path])
        self._insert("ingested_files", IngestedFile, batch.files)

    def write_batch(self, batch: Batch) -> None:
        """Write one batch in one transaction (all of it, or nothing)."""
        if self.read_only:
            raise StoreError("store opened read-only")
        with self.transaction():
            self._write(batch)

    def replace_derived(self, observations: list[Observation], verdicts: list[Verdict]) -> None:
        """Replace the observations and verdicts of these measurements (reprocess)."""
        uids = sorted({v.measurement_uid for v in verdicts})
        if not uids:
            return
        import pyarrow as pa

        with self.transaction():
            del_uids = pa.table({"u": uids})  # noqa: F841
            for table in ("observations", "verdicts"):
                self.conn.execute(
                    f"DELETE FROM {table} WHERE measurement_uid IN (SELECT u FROM del_uids)"
                )
            self._insert("observations", Observation, observations)
            self._insert("verdicts", Verdict, verdicts)

    # -- reader -------------------------------------------------------------------------

    def watermarks(self) -> dict[str, IngestedFile]:
        cols = columns(IngestedFile)
        rows = self.conn.execute(f"SELECT {', '.join(cols)} FROM ingested_files").fetchall()
        return {r[0]: IngestedFile(*r) for r in rows}

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in TABLES:
            row = self.conn.execute(f"SELECT count(*) FROM {t}").fetchone()
            out[t] = int(row[0]) if row else 0
        return out

    def stored_measurements(
        self, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> list[StoredMeasurement]:
        """Measurements with measurement_start_time in [since, until)."""
        where: list[str] = []
        params: list[Any] = []
        if since is not None:
            where.append("measurement_start_time >= ?")
            params.append(since)
        if until is not None:
            where.append("measurement_start_time < ?")
            params.append(until)
        cols = columns(StoredMeasurement)
        sql = f"SELECT {', '.join(cols)} FROM measurements"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY raw_path, raw_line, raw_index"
        return [StoredMeasurement(*r) for r in self.conn.execute(sql, params).fetchall()]

    def raw_measurement(self, uid: str) -> dict[str, Any] | None:
        """The raw measurement, unchanged, read back from the file it lives in; None if the
        uid is unknown or its file/line is gone."""
        row = self.conn.execute(
            "SELECT raw_path, raw_line, raw_index FROM measurements WHERE measurement_uid = ?",
            [uid],
        ).fetchone()
        if row is None:
            return None
        doc = load_raw(Path(row[0]), row[1], row[2])
        return doc if isinstance(doc, dict) else None

    def verdict(self, uid: str) -> Verdict | None:
        cols = columns(Verdict)
        row = self.conn.execute(
            f"SELECT {', '.join(cols)} FROM verdicts WHERE measurement_uid = ?", [uid]
        ).fetchone()
        return Verdict(*row) if row else None


def write_batches(path: str | Path, batches: Iterable[Batch], busy_wait: float = 10.0) -> int:
    """Write each batch in its own short read-write session, so readers get in between."""
    n = 0
    for batch in batches:
        with Store.open(path, busy_wait=busy_wait) as store:
            store.write_batch(batch)
        n += 1
    return n


__all__ = [
    "TABLES",
    "Batch",
    "Store",
    "StoreBusy",
    "StoreError",
    "columns",
    "schema_ddl",
    "table_ddl",
    "write_batches",
]
