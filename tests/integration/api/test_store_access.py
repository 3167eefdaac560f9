"""How the API shares the store file with a writer (`dideban ingest` in another process)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dideban.api.app import create_app
from dideban.api.reader import Reader, StoreBusy
from dideban.api.samplestore import build_sample_store
from dideban.model.verdict import Verdict

INSERT_ONE_WITH_STORE = """
import sys
from dideban.store import Store
with Store.open(sys.argv[1], busy_wait=10) as store:
    store.conn.execute("INSERT INTO verdicts (measurement_uid, report_id, probe_cc, probe_asn,"
        " test_name, measurement_start_time, anomaly, confirmed, failure) VALUES ('new-2', 'r',"
        " 'IR', 'AS1', 'web_connectivity', TIMESTAMP '2026-11-20', true, false, false)")
"""

HOLD_WRITE_LOCK = """
import duckdb, sys, time
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


@pytest.fixture
def own_store(tmp_path: Path, sample_store: tuple[Path, list[Verdict]]) -> Path:
    db = tmp_path / "store.duckdb"
    shutil.copy(sample_store[0], db)
    return db


async def test_a_writer_can_write_between_queries_and_readers_see_it(own_store: Path) -> None:
    # The store's own writer retries on the lock, as `dideban ingest` does.
    app = create_app(own_store, dashboard=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        before = (await c.get("/api/v1/aggregation")).json()["result"]["measurement_count"]
        done = subprocess.run(
            [sys.executable, "-c", INSERT_ONE_WITH_STORE, str(own_store)],
            capture_output=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr.decode()
        after = (await c.get("/api/v1/aggregation")).json()["result"]["measurement_count"]
    assert after == before + 1
    app.state.reader.close()


class WriterProbe:
    """A process that tries to open the store read-write when asked (no retry): it starts
    ahead, so that the attempt happens within milliseconds of the question, even under load."""

    SCRIPT = """
import duckdb, sys
print("ready", flush=True)
for _ in sys.stdin:
    try:
        duckdb.connect(sys.argv[1]).close()
        print("free", flush=True)
    except duckdb.IOException as exc:
        print("locked" if "lock" in str(exc).lower() else "error", flush=True)
"""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def ask(self) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("?\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


@pytest.fixture
def writer(own_store: Path) -> Iterator[WriterProbe]:
    probe = WriterProbe(own_store)
    yield probe
    probe.close()


def test_the_reader_lets_go_of_the_file_when_idle(own_store: Path, writer: WriterProbe) -> None:
    reader = Reader(own_store, keep_open=60, idle_release=1.0)
    try:
        reader.query("SELECT count(*) FROM verdicts")
        # Still open right after a query: a burst of queries shares one warm connection...
        assert writer.ask() == "locked"
        # ...and the file is free once the reader has been idle for idle_release.
        time.sleep(2.5)
        assert writer.ask() == "free"
        assert reader.query("SELECT count(*) AS n FROM verdicts")[0]["n"] == 400
    finally:
        reader.close()


def test_keep_open_zero_closes_after_every_query(own_store: Path, writer: WriterProbe) -> None:
    reader = Reader(own_store, keep_open=0)
    try:
        reader.query("SELECT count(*) FROM verdicts")
        assert writer.ask() == "free"
    finally:
        reader.close()


def test_the_reader_lets_go_after_keep_open(own_store: Path, writer: WriterProbe) -> None:
    reader = Reader(own_store, keep_open=1.0, idle_release=60)
    try:
        reader.query("SELECT 1")
        assert writer.ask() == "locked"
        time.sleep(1.8)  # open for keep_open, nothing running: closed although not idle long
        assert writer.ask() == "free"
    finally:
        reader.close()


async def test_a_long_write_gives_503_then_recovers(own_store: Path) -> None:
    app = create_app(own_store, dashboard=False)
    app.state.reader.busy_wait = 0.3
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITE_LOCK, str(own_store), "3"], stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"locked"
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.get("/api/v1/measurements")
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "store_busy"
            proc.wait(timeout=30)
            r = await c.get("/api/v1/measurements")
            assert r.status_code == 200
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_held_connection_follows_an_atomically_replaced_file(
    own_store: Path, tmp_path: Path
) -> None:
    smaller, verdicts = build_sample_store(tmp_path / "smaller", n=40, seed=9)
    reader = Reader(own_store, hold=True)
    try:
        assert reader.query("SELECT count(*) AS n FROM verdicts")[0]["n"] == 400
        os.replace(smaller, own_store)
        assert reader.query("SELECT count(*) AS n FROM verdicts")[0]["n"] == len(verdicts)
    finally:
        reader.close()


def test_held_connection_times_out_and_keeps_answering(own_store: Path) -> None:
    reader = Reader(own_store, hold=True, timeout=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(Exception, match="time limit"):
            reader.query("SELECT count(*) FROM range(100000000000) t(a) WHERE a % 7 = 3")
        assert time.monotonic() - started < 5
        assert reader.query("SELECT count(*) AS n FROM verdicts")[0]["n"] == 400
    finally:
        reader.close()


def test_busy_is_reported_not_raised_as_a_lock_error(own_store: Path) -> None:
    reader = Reader(own_store, busy_wait=0.2)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITE_LOCK, str(own_store), "2"], stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"locked"
        with pytest.raises(StoreBusy, match="being written"):
            reader.query("SELECT 1")
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_writer_gets_in_under_a_steady_stream_of_queries(own_store: Path) -> None:
    reader = Reader(own_store, keep_open=0.5)
    stop = threading.Event()
    answered: list[int] = []

    def hammer() -> None:
        while not stop.is_set():
            answered.append(reader.query("SELECT count(*) AS n FROM verdicts")[0]["n"])

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        done = subprocess.run(
            [sys.executable, "-c", INSERT_ONE_WITH_STORE, str(own_store)],
            capture_output=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr.decode()
        time.sleep(1.2)  # past keep_open: the readers reopen and see the new row
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        reader.close()
    assert answered[0] == 400 and answered[-1] == 401
    assert set(answered) == {400, 401}
