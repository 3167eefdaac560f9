"""Running a nettest over many inputs: bounded concurrency, each measurement streamed out.

Each completed measurement is wrapped in its envelope, scrubbed of the probe's addresses, then
handed to every sink (the JSONL file, the collector submitter) before the next result is
reported. Results come back in input order for the final table.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dideban.nettests import Nettest, reset_passive_hook, set_passive_hook
from dideban.probe.envelope import RunInfo
from dideban.probe.testlists import Target

Sink = Callable[[dict[str, Any]], Awaitable[None]]
Scrub = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class MeasurementResult:
    target: Target
    measurement: dict[str, Any]

    @property
    def test_keys(self) -> dict[str, Any]:
        tk = self.measurement.get("test_keys")
        return tk if isinstance(tk, dict) else {}

    @property
    def blocking(self) -> str | bool | None:
        value = self.test_keys.get("blocking")
        return value if isinstance(value, str | bool) else None

    @property
    def accessible(self) -> bool | None:
        value = self.test_keys.get("accessible")
        return value if isinstance(value, bool) else None

    @property
    def failure(self) -> str | None:
        """The first failure on the way: control, DNS, then HTTP."""
        tk = self.test_keys
        for key in ("control_failure", "dns_experiment_failure", "http_experiment_failure"):
            if tk.get(key):
                return f"{key.removesuffix('_failure').removesuffix('_experiment')}: {tk[key]}"
        return None


class JsonlWriter:
    """One measurement per line, flushed as it is written (a crash loses no finished line)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self.count = 0

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", encoding="utf-8")

    async def write(self, measurement: dict[str, Any]) -> None:
        if self._file is None:
            raise RuntimeError("JsonlWriter.write before open")
        self._file.write(json.dumps(measurement, ensure_ascii=False, sort_keys=True) + "\n")
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def measure_one(
    nettest: Nettest,
    target: Target,
    ctx: Any,
    info: RunInfo,
    scrub: Scrub,
    clock: Callable[[], dt.datetime] = _now,
) -> MeasurementResult:
    started = clock()
    t0 = time.monotonic()
    test_keys = await nettest.run(target.url, ctx)
    runtime = time.monotonic() - t0
    measurement = info.envelope(target.url, started).to_measurement(test_keys, runtime)
    return MeasurementResult(target, scrub(measurement))


async def run_targets(
    nettest: Nettest,
    targets: Sequence[Target],
    ctx: Any,
    info: RunInfo,
    *,
    scrub: Scrub,
    sinks: Sequence[Sink] = (),
    concurrency: int = 32,
    on_result: Callable[[MeasurementResult], None] | None = None,
    clock: Callable[[], dt.datetime] = _now,
    start_interval: float = 0.0,
) -> list[MeasurementResult]:
    """Measure every target with at most `concurrency` in flight; results in input order.

    Worker k starts `k * start_interval` seconds late: a ramp-up, so that the first wave of
    measurements does not hit the resolver with `4 * concurrency` queries in one burst (UDP
    queries dropped by a full socket buffer would look like DNS blocking)."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    results: list[MeasurementResult | None] = [None] * len(targets)
    # Sinks see one measurement at a time, in completion order.
    sink_lock = asyncio.Lock()
    # A slot is held while a measurement does active network work; a nettest gives it back
    # early with `nettests.passive_from_here()` (asyncio's semaphore is FIFO: input order).
    slots = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        if i < concurrency and start_interval > 0:
            await asyncio.sleep(i * start_interval)
        await slots.acquire()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                slots.release()

        token = set_passive_hook(release)
        try:
            result = await measure_one(nettest, targets[i], ctx, info, scrub, clock)
        finally:
            reset_passive_hook(token)
            release()
        async with sink_lock:
            for sink in sinks:
                await sink(result.measurement)
        results[i] = result
        if on_result is not None:
            on_result(result)

    async with asyncio.TaskGroup() as group:
        for i in range(len(targets)):
            group.create_task(one(i))
    return [r for r in results if r is not None]
