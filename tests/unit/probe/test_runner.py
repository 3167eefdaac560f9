from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from dideban.model.measurement import ENVELOPE_KEYS, ProbeNetwork
from dideban.nettests import Nettest
from dideban.probe.envelope import RunInfo
from dideban.probe.privacy import scrubber
from dideban.probe.runner import JsonlWriter, MeasurementResult, run_targets
from dideban.probe.testlists import Target

ME = "203.0.113.77"
START = dt.datetime(2026, 11, 29, 4, 0, 0, tzinfo=dt.UTC)


def _info() -> RunInfo:
    return RunInfo(
        test_name="fake",
        test_version="0.0.1",
        network=ProbeNetwork("IR", "AS197207", "MCI"),
        test_start_time=START,
        test_helper_url="http://127.0.0.1:1/",
        annotations={"network_type": "lab"},
    )


def _nettest(state: dict[str, int]) -> Nettest:
    async def run(url: str, ctx: Any) -> dict[str, Any]:
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        await asyncio.sleep(0.01 if "slow" in url else 0)
        state["now"] -= 1
        return {"blocking": False, "accessible": True, "echo": f"seen from {ME}", "url": url}

    return Nettest("fake", "0.0.1", "url", run)


async def test_bounded_concurrency_input_order_envelope_and_streaming(tmp_path: Path) -> None:
    state = {"now": 0, "max": 0}
    targets = [Target(f"http://{'slow' if i % 3 == 0 else 'fast'}{i}.org/") for i in range(40)]
    out = tmp_path / "r.jsonl"
    writer = JsonlWriter(out)
    writer.open()
    seen: list[MeasurementResult] = []
    results = await run_targets(
        _nettest(state),
        targets,
        None,
        _info(),
        scrub=lambda m: scrubber()(m, [ME]),
        sinks=[writer.write],
        concurrency=5,
        on_result=seen.append,
        clock=lambda: START,
    )
    writer.close()
    assert state["max"] == 5
    assert [r.target for r in results] == targets
    assert len(seen) == 40
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 40
    for line in lines:
        m = json.loads(line)
        assert set(ENVELOPE_KEYS) <= set(m)
        assert m["probe_ip"] == "127.0.0.1" and ME not in line
        assert m["test_helpers"] == {"backend": {"address": "http://127.0.0.1:1/", "type": "https"}}
        assert m["measurement_start_time"] == "2026-11-29 04:00:00"
        assert m["annotations"]["network_type"] == "lab"
        assert m["input"] == m["test_keys"]["url"]
    assert {json.loads(x)["input"] for x in lines} == {t.url for t in targets}


async def test_zero_concurrency_is_an_error() -> None:
    with pytest.raises(ValueError):
        await run_targets(
            _nettest({"now": 0, "max": 0}), [], None, _info(), scrub=dict, concurrency=0
        )


def test_result_failure_summary() -> None:
    r = MeasurementResult(
        Target("http://a.org/"), {"test_keys": {"dns_experiment_failure": "dns_nxdomain_error"}}
    )
    assert r.failure == "dns: dns_nxdomain_error"
    assert r.blocking is None and r.accessible is None


async def test_a_passive_measurement_gives_its_slot_to_the_next() -> None:
    """Six measurements, two slots: each goes passive, then waits until ALL six are passive.
    That can only happen if going passive frees the slot (else it deadlocks: timeout)."""
    from dideban.nettests import passive_from_here

    active = {"now": 0, "max": 0, "passive": 0}
    everyone_passive = asyncio.Event()

    async def run(url: str, ctx: Any) -> dict[str, Any]:
        active["now"] += 1
        active["max"] = max(active["max"], active["now"])
        await asyncio.sleep(0)
        active["now"] -= 1
        passive_from_here()
        passive_from_here()  # twice is harmless: the slot is given back once
        active["passive"] += 1
        if active["passive"] == 6:
            everyone_passive.set()
        await everyone_passive.wait()
        return {"url": url}

    targets = [Target(f"http://site{i}.org/") for i in range(6)]
    results = await asyncio.wait_for(
        run_targets(
            Nettest("fake", "0.0.1", "url", run),
            targets,
            None,
            _info(),
            scrub=lambda m: m,
            concurrency=2,
            clock=lambda: START,
        ),
        timeout=10,
    )
    assert [r.target.url for r in results] == [t.url for t in targets]
    assert active["max"] <= 2
