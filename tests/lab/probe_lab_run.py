"""One probe run over the `iran` lab, shared by the lab tests of this session (H3's files).

The run is done once per test session (a module-level cache) with the real stack: the
userspace lab, the control test helper on uvicorn, and `dideban run websites`'s code path.
"""

from __future__ import annotations

import asyncio
import functools
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dideban.model.labnet import LabNetwork
from dideban.probe.cli import WebsitesRun, lab_session, run_websites

SCENARIO = "iran"


@dataclass(frozen=True)
class LabRunResult:
    network: LabNetwork
    output: Path
    measurements: tuple[dict[str, Any], ...]
    lines: tuple[str, ...]

    def by_input(self) -> dict[str, dict[str, Any]]:
        return {m["input"]: m for m in self.measurements}


async def _run(output: Path) -> LabNetwork:
    async with lab_session(SCENARIO) as session:
        run = WebsitesRun(
            session.targets,
            output,
            session.network,
            session.test_helper_url,
            # Lab, helper and probe share this process: a moderate concurrency keeps the lab's
            # resolver answering within its 2 s timeout even on a busy machine.
            16,
            show_progress=False,
        )
        await asyncio.wait_for(run_websites(run), timeout=90)
        return session.network


@functools.cache
def iran_run() -> LabRunResult:
    out = Path(tempfile.mkdtemp(prefix="dideban-h3-lab-")) / "results.jsonl"
    network = asyncio.run(_run(out))
    lines = tuple(out.read_text(encoding="utf-8").splitlines())
    return LabRunResult(network, out, tuple(json.loads(x) for x in lines), lines)
