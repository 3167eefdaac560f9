"""What the collector tests share: the collector in-process, and an open-report request as it
goes on the wire (a literal: the tests pin the wire format, not the probe's model of it)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from dideban.collector.app import create_app

OPEN_REQUEST: dict[str, str] = {
    "data_format_version": "0.2.0",
    "format": "json",
    "probe_asn": "AS197207",
    "probe_cc": "IR",
    "software_name": "dideban",
    "software_version": "0.1.0",
    "test_name": "web_connectivity",
    "test_version": "0.5.0",
}


@contextlib.asynccontextmanager
async def in_process(data_dir: Path, **app_options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The collector app in-process (`create_app(data_dir, **app_options)`), its storage
    started and stopped as the lifespan would."""
    app = create_app(data_dir, **app_options)
    collector = app.state.collector
    await collector.writer.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://collector") as client:
            yield client
    finally:
        await collector.writer.stop()
