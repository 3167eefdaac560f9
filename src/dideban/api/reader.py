"""Read-only access to the store for the API and the dashboard.

Every query runs on its own cursor of one read-only DuckDB connection and is interrupted when
it runs past the time limit (DuckDB's `interrupt`), so a heavy request cannot hold a worker
thread for ever. Bad input never reaches SQL as text: every value is a bound parameter and
every identifier comes from a closed list in `dideban.api.query`.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb


class QueryTimeout(Exception):
    """A query ran past the reader's time limit and was interrupted."""


class StoreUnavailable(Exception):
    """The store file cannot be opened or lacks the tables the API reads."""


Row = dict[str, Any]


class Reader:
    """Read-only queries with a time limit against a Dideban store (DuckDB file)."""

    def __init__(
        self, db_path: str | Path, *, timeout: float = 5.0, threads: int | None = None
    ) -> None:
        self.db_path = Path(db_path)
        self.timeout = timeout
        if not self.db_path.exists():
            raise StoreUnavailable(f"store {self.db_path} does not exist")
        try:
            config: dict[str, str | bool | int | float | list[str]] = {}
            if threads:
                config["threads"] = threads
            self._conn = duckdb.connect(str(self.db_path), read_only=True, config=config)
        except duckdb.Error as exc:
            raise StoreUnavailable(f"cannot open store {self.db_path}: {exc}") from exc
        tables = {
            r[0] for r in self._conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
        if "verdicts" not in tables:
            self._conn.close()
            raise StoreUnavailable(f"store {self.db_path} has no verdicts table")
        self.tables = tables
        self.columns = {
            t: [
                r[0]
                for r in self._conn.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                    "ORDER BY column_index",
                    [t],
                ).fetchall()
            ]
            for t in tables
        }

    def close(self) -> None:
        self._conn.close()

    def query(
        self, sql: str, params: Sequence[Any] = (), *, timeout: float | None = None
    ) -> list[Row]:
        """Run one SELECT; rows as dicts. Raises QueryTimeout past the time limit."""
        limit = self.timeout if timeout is None else timeout
        cur = self._conn.cursor()
        fired = threading.Event()

        def _interrupt() -> None:
            fired.set()
            cur.interrupt()

        timer = threading.Timer(limit, _interrupt)
        timer.daemon = True
        timer.start()
        try:
            rel = cur.execute(sql, list(params))
            names = [d[0] for d in rel.description or []]
            return [dict(zip(names, row, strict=True)) for row in rel.fetchall()]
        except duckdb.InterruptException as exc:
            raise QueryTimeout(f"query ran past the {limit:g} s time limit") from exc
        except duckdb.Error:
            if fired.is_set():
                raise QueryTimeout(f"query ran past the {limit:g} s time limit") from None
            raise
        finally:
            timer.cancel()
            cur.close()

    def raw_measurement(self, uid: str, raw_path: str | None, raw_line: int | None) -> Any:
        """The raw measurement as stored: from the store's measurements table when it keeps
        the JSON, else from the file and line the verdict points at. None when unavailable."""
        cols = self.columns.get("measurements", [])
        for col in ("raw", "raw_json", "measurement"):
            if col in cols:
                rows = self.query(
                    f"SELECT {col} AS raw FROM measurements WHERE measurement_uid = ?", [uid]
                )
                if rows and rows[0]["raw"] is not None:
                    value = rows[0]["raw"]
                    return json.loads(value) if isinstance(value, str | bytes) else value
        if raw_path is None:
            return None
        return read_raw_line(Path(raw_path), raw_line)


def read_raw_line(path: Path, line: int | None) -> Any:
    """One measurement from a .json file or line `line` (1-based) of a .jsonl(.gz/.zst) file."""
    if not path.is_file():
        return None
    name = path.name
    try:
        if name.endswith(".gz"):
            text = gzip.decompress(path.read_bytes()).decode("utf-8")
        elif name.endswith(".zst"):
            import zstandard

            text = (
                zstandard.ZstdDecompressor()
                .decompressobj()
                .decompress(path.read_bytes())
                .decode("utf-8")
            )
        else:
            text = path.read_text(encoding="utf-8")
        if line is None:
            return json.loads(text)
        lines = text.splitlines()
        if not 1 <= line <= len(lines):
            return None
        return json.loads(lines[line - 1])
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def iso(value: Any) -> Any:
    """Timestamps as OONI writes them in its API (`2024-01-02T03:04:05Z`)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
