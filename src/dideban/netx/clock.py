"""Clocks: monotonic time, injectable so tests can assert exact timings without sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale (only differences are meaningful)."""
        ...


class MonotonicClock:
    """The real clock: `time.monotonic()`."""

    def now(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to (`advance`, or `step` per reading)."""

    def __init__(self, start: float = 0.0, step: float = 0.0) -> None:
        self._t = start
        self._step = step

    def now(self) -> float:
        t = self._t
        self._t += self._step
        return t

    def advance(self, seconds: float) -> None:
        self._t += seconds


MONOTONIC = MonotonicClock()
