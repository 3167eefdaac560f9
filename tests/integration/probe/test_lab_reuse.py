"""`dideban run websites --lab iran` reuses a lab that `dideban lab up` already runs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dideban.probe.cli import WebsitesRun, lab_session, run_websites

pytestmark = pytest.mark.slow


async def _reuse(output: Path) -> tuple[bool, int, int]:
    async with lab_session("iran") as session:
        targets = session.targets[:3]
        run = WebsitesRun(
            targets, output, session.network, session.test_helper_url, 4, show_progress=False
        )
        results = await run_websites(run)
        return session.started_lab, session.network.pid, len(results)


def test_running_lab_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("DIDEBAN_STATE_DIR", str(state))
    proc = subprocess.Popen(
        [sys.executable, "-m", "dideban", "lab", "up", "--scenario", "iran"],
        env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (state / "lab" / "iran.json").exists():
            assert time.monotonic() < deadline, "lab did not start"
            assert proc.poll() is None, "lab exited"
            time.sleep(0.05)
        started, pid, count = asyncio.run(_reuse(tmp_path / "r.jsonl"))
        assert (started, pid, count) == (False, proc.pid, 3)
        assert proc.poll() is None  # the probe left the lab it did not start running
        lines = (tmp_path / "r.jsonl").read_text(encoding="utf-8").splitlines()
        assert all(json.loads(x)["probe_cc"] == "IR" for x in lines) and len(lines) == 3
    finally:
        proc.terminate()
        proc.wait(timeout=30)
