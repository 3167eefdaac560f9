"""`dideban serve` on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from dideban.api.server import start_server
from dideban.cli import build_app
from dideban.model.verdict import Verdict


def test_serve_refuses_a_missing_store(tmp_path: Path) -> None:
    result = CliRunner().invoke(build_app(), ["serve", "--db", str(tmp_path / "missing.duckdb")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_on_loopback(sample_store: tuple[Path, list[Verdict]]) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dideban",
            "serve",
            "--db",
            str(sample_store[0]),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        body = None
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/v1/aggregation", timeout=2)
                body = r.json()
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert body is not None, "server did not come up"
        assert body["result"]["measurement_count"] == len(sample_store[1])
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 200 and "Where blocking is happening now" in page.text
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_start_server_runs_in_a_thread_and_stops(sample_store: tuple[Path, list[Verdict]]) -> None:
    running = start_server(sample_store[0], dashboard=False)
    try:
        assert running.url.startswith("http://127.0.0.1:")
        r = httpx.get(running.url + "/api/v1/aggregation", timeout=5)
        assert r.json()["result"]["measurement_count"] == len(sample_store[1])
        assert httpx.get(running.url + "/", timeout=5).status_code == 404  # no dashboard
    finally:
        running.stop()
    assert not running.thread.is_alive()
    with pytest.raises(httpx.TransportError):
        httpx.get(running.url + "/api/v1/aggregation", timeout=2)
