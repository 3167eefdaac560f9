"""`dideban testhelper` as a process: serves a lab's control view from its state file."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from dideban.model.labnet import LabNetwork, LabView


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_cli_serves_health_from_a_lab_state_file(tmp_path: Path) -> None:
    view = LabView(routes={}, resolver="127.0.0.1:1")
    state = tmp_path / "lab.json"
    state.write_text(LabNetwork("t", "IR", "AS1", "n", "203.0.113.9", view, view, "").to_json())
    port = _free_port()
    cmd = [sys.executable, "-m", "dideban", "testhelper", "--port", str(port),
           "--lab-state", str(state)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        body = b""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                    body = r.read()
                break
            except OSError:
                time.sleep(0.1)
        assert b'"lab_mode":true' in body
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def test_cli_rejects_a_bad_state_file(tmp_path: Path) -> None:
    bad = tmp_path / "lab.json"
    bad.write_text("{not json")
    run = subprocess.run(
        [sys.executable, "-m", "dideban", "testhelper", "--lab-state", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2
    assert "not a lab state file" in run.stderr
