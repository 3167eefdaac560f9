"""web_connectivity on the real Internet (opt-in: DIDEBAN_INTERNET_TESTS=1)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from dideban.probe.cli import WebsitesRun, run_websites
from dideban.probe.testlists import Target

pytestmark = [
    pytest.mark.internet,
    pytest.mark.skipif(
        os.environ.get("DIDEBAN_INTERNET_TESTS") != "1", reason="set DIDEBAN_INTERNET_TESTS=1"
    ),
]


async def _run(output: Path) -> None:
    import contextlib
    import socket

    import uvicorn

    from dideban.netx import make_network
    from dideban.testhelper import create_app

    # Our own test helper, on loopback, measuring the real Internet.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(create_app(make_network(None, "control")), lifespan="off")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        helper = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        targets = [Target("https://example.org/"), Target("http://example.com/")]
        await run_websites(WebsitesRun(targets, output, None, helper, 2, show_progress=False))
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        sock.close()


def test_example_sites_are_accessible(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    asyncio.run(_run(out))
    for line in out.read_text(encoding="utf-8").splitlines():
        tk = json.loads(line)["test_keys"]
        assert (tk["blocking"], tk["accessible"]) == (False, True)
