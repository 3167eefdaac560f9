"""Every measurement the probe writes loads with OONI's own `oonidata` 0.3.0 models.

oonidata pins old dependencies (click 8.0, cryptography 38, lxml 4.9), so it lives in its own
venv under the user's cache dir, created on first use. If pip cannot install it the test fails,
unless DIDEBAN_OFFLINE=1 says this machine has no package index.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from probe_lab_run import iran_run

VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dideban" / "oonidata-venv"
PYTHON = VENV / "bin" / "python"

PARSE = r"""
import json, sys
from oonidata.models.nettests import WebConnectivity
out = []
for line in open(sys.argv[1], encoding="utf-8"):
    m = WebConnectivity.from_dict(json.loads(line))
    tk = m.test_keys
    out.append({"input": m.input, "blocking": tk.blocking, "accessible": tk.accessible,
                "dns_consistency": tk.dns_consistency, "probe_ip": m.probe_ip,
                "queries": len(tk.queries or []), "requests": len(tk.requests or [])})
print(json.dumps(out))
"""


def _oonidata_python() -> Path:
    probe = [str(PYTHON), "-c", "import oonidata.models.nettests"]
    if PYTHON.exists() and subprocess.run(probe, capture_output=True, timeout=60).returncode == 0:
        return PYTHON
    VENV.parent.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        [sys.executable, "-m", "venv", "--clear", str(VENV)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    installed = made.returncode == 0 and (
        subprocess.run(
            [str(PYTHON), "-m", "pip", "install", "-q", "oonidata==0.3.0"],
            capture_output=True,
            text=True,
            timeout=600,
        ).returncode
        == 0
    )
    if not installed:
        if os.environ.get("DIDEBAN_OFFLINE") == "1":
            pytest.skip("oonidata==0.3.0 not installable and DIDEBAN_OFFLINE=1")
        pytest.fail("could not install oonidata==0.3.0 into an isolated venv")
    return PYTHON


@pytest.mark.slow
def test_every_measurement_parses_with_oonidata_and_agrees() -> None:
    run = iran_run()
    python = _oonidata_python()
    done = subprocess.run(
        [str(python), "-c", PARSE, str(run.output)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    parsed = json.loads(done.stdout)
    assert len(parsed) == len(run.measurements) > 0
    ours = run.by_input()
    for p in parsed:
        tk = ours[p["input"]]["test_keys"]
        assert (p["blocking"], p["accessible"], p["dns_consistency"]) == (
            tk["blocking"],
            tk["accessible"],
            tk["dns_consistency"],
        ), p["input"]
        assert p["probe_ip"] == "127.0.0.1"
        assert p["queries"] == len(tk["queries"]) and p["requests"] == len(tk["requests"])
