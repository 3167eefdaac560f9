"""Read-only access to the store for the API and the dashboard.

Every query runs on its own cursor of one read-only DuckDB connection and is interrupted when
it runs past the time limit (DuckDB's `interrupt`), so a heavy request cannot hold a worker
thread for ever. Bad input never reaches SQL as text: every value is a bound parameter and
every identifier comes from a closed list in `dideban.api.query`.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from dideban.model.rawfile import load_raw


class QueryTimeout(Exception):
    """A query ran past the reader's time limit and was interrupted."""


class StoreUnavailable(Exception):
    """The store file cannot be opened or lacks the tables the API reads."""


class StoreBusy(Exception):
    """The writer held the store's file lock for longer than the reader waits."""


Row = dict[str, Any]


class Reader:
    """Read-only queries with a time limit against a Dideban store (DuckDB file).

    DuckDB lets one process open a file read-write, and only while no other process has it
    open at all; and closing the last connection drops the cache of what was read. So the
    reader keeps one read-only connection while queries keep coming and closes it whenever
    no query is running and either it has been idle for `idle_release` seconds or it has been
    open for `keep_open` seconds. `dideban ingest` (which retries on the lock) then writes in
    those gaps, and queries in a burst share a warm cache. `keep_open=0` closes after every
    query; `hold=True` never closes (an archive no writer touches). A query that finds the
    writer's lock retries for up to `busy_wait` seconds, then raises StoreBusy. Under a steady
    stream of queries the connection is still closed after `keep_open` seconds, and new queries
    wait `writer_gap` seconds before reopening, long enough for a writer that polls the lock
    (the store's writer backs off to 0.1 s) to get in. A file
    replaced by atomic rename (a writer that publishes snapshots) is reopened.
    """

    def __init__(
        self,
        db_path: str | Path,
        *,
        timeout: float = 5.0,
        threads: int | None = None,
        hold: bool = False,
        keep_open: float = 1.0,
        idle_release: float = 0.2,
        writer_gap: float = 0.15,
        busy_wait: float = 3.0,
    ) -> None:
        self.db_path = Path(db_path)
        self.timeout = timeout
        self.keep_open = float("inf") if hold else keep_open
        self.idle_release = float("inf") if hold else min(idle_release, max(keep_open, 0.01))
        self.busy_wait = busy_wait
        self._config: dict[str, str | bool | int | float | list[str]] = {}
        if threads:
            self._config["threads"] = threads
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.writer_gap = writer_gap
        self._gap_until = 0.0
        self._held: duckdb.DuckDBPyConnection | None = None
        self._held_id: tuple[int, int] | None = None
        self._opened_at = 0.0
        self._last_used = 0.0
        self._active = 0
        self._stop = threading.Event()
        self._janitor: threading.Thread | None = None
        if not self.db_path.exists():
            raise StoreUnavailable(f"store {self.db_path} does not exist")
        try:
            conn = self._connect()
        except (duckdb.Error, StoreBusy) as exc:
            raise StoreUnavailable(f"cannot open store {self.db_path}: {exc}") from exc
        try:
            tables = {
                r[0] for r in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            }
            if "verdicts" not in tables:
                raise StoreUnavailable(f"store {self.db_path} has no verdicts table")
            self.tables = tables
            self.columns = {
                t: [
                    r[0]
                    for r in conn.execute(
                        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                        "ORDER BY column_index",
                        [t],
                    ).fetchall()
                ]
                for t in tables
            }
        finally:
            conn.close()

    def _file_id(self) -> tuple[int, int]:
        st = self.db_path.stat()
        return st.st_ino, st.st_dev

    def _connect(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.busy_wait
        delay = 0.01
        while True:
            try:
                return duckdb.connect(str(self.db_path), read_only=True, config=self._config)
            except duckdb.IOException as exc:
                # "Could not set lock on file": the writer has it open right now.
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() + delay > deadline:
                    raise StoreBusy(f"the store is being written ({exc})") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def _close_held(self, *, gap: bool = False) -> None:
        # Only with the lock held and no query running: DuckDB hands out the already-open
        # instance for a path while any connection to it lives.
        if self._held is not None:
            self._held.close()
            self._held = None
            if gap and self.keep_open > 0:
                self._gap_until = time.monotonic() + self.writer_gap

    def _acquire(self) -> duckdb.DuckDBPyConnection:
        """A cursor for one query; hand it back with `_release`."""
        with self._cond:
            while True:
                now = time.monotonic()
                if self._held is not None and now - self._opened_at >= self.keep_open:
                    # Open too long: let the running queries finish, close, and leave the
                    # writer a gap, so that a steady stream of queries cannot starve ingest.
                    if self._active == 0:
                        self._close_held(gap=True)
                    else:
                        self._cond.wait(0.05)
                    continue
                if self._held is None and now < self._gap_until:
                    self._cond.wait(self._gap_until - now)
                    continue
                break
            if self._held is not None and self._active == 0:
                try:
                    replaced = self._file_id() != self._held_id
                except OSError:
                    replaced = True
                if replaced:
                    self._close_held()
            if self._held is None:
                self._held = self._connect()
                self._held_id = self._file_id()
                self._opened_at = time.monotonic()
                self._start_janitor()
            self._active += 1
            return self._held.cursor()

    def _release(self, cur: duckdb.DuckDBPyConnection) -> None:
        cur.close()
        with self._cond:
            self._active -= 1
            now = time.monotonic()
            self._last_used = now
            if self._active == 0 and now - self._opened_at >= self.keep_open:
                self._close_held(gap=True)
            self._cond.notify_all()

    def _start_janitor(self) -> None:
        if self._janitor is not None or self.keep_open == float("inf"):
            return
        self._janitor = threading.Thread(target=self._sweep, name="dideban-reader", daemon=True)
        self._janitor.start()

    def _sweep(self) -> None:
        """Close the connection once idle for `idle_release` s or open for `keep_open` s."""
        period = max(min(self.idle_release, self.keep_open) / 2, 0.01)
        while not self._stop.wait(period):
            with self._cond:
                now = time.monotonic()
                idle = now - self._last_used >= self.idle_release
                old = now - self._opened_at >= self.keep_open
                if self._held is not None and self._active == 0 and (idle or old):
                    self._close_held()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._close_held()

    def query(
        self, sql: str, params: Sequence[Any] = (), *, timeout: float | None = None
    ) -> list[Row]:
        """Run one SELECT; rows as dicts. Raises QueryTimeout past the time limit."""
        limit = self.timeout if timeout is None else timeout
        cur = self._acquire()
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
            self._release(cur)

    def raw_measurement(self, uid: str, raw_path: str | None, raw_line: int | None) -> Any:
        """The raw measurement, unchanged, from the file the store says it lives in (the
        `measurements` table: path, JSONL line or JSON-array index), else from the path the
        verdict carries. None when it is gone."""
        if "measurements" in self.tables:
            cols = set(self.columns.get("measurements", []))
            index = "raw_index" if "raw_index" in cols else "NULL"
            rows = self.query(
                f"SELECT raw_path, raw_line, {index} AS raw_index FROM measurements "
                "WHERE measurement_uid = ?",
                [uid],
            )
            if rows and rows[0]["raw_path"]:
                row = rows[0]
                return load_raw(Path(row["raw_path"]), row["raw_line"], row["raw_index"])
        if raw_path is None:
            return None
        return load_raw(Path(raw_path), raw_line)


def iso(value: Any) -> Any:
    """Timestamps as OONI writes them in its API (`2024-01-02T03:04:05Z`)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
