"""A collector run as a real subprocess on 127.0.0.1 (for kill -9 and restart tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dideban.collector.process import CollectorProcess, free_port


@pytest.fixture
def collector_process(tmp_path: Path) -> Iterator[CollectorProcess]:
    proc = CollectorProcess(tmp_path / "data", free_port(), tmp_path / "collector.log")
    try:
        yield proc
    finally:
        proc.stop()
