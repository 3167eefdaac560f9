"""Outside the lab the probe knows no "public address" from a lab, but it still scrubs this
machine's own interface addresses: a site that echoes them back must not get them recorded."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from dideban.netx.local import local_addresses
from dideban.probe.cli import WebsitesRun, run_websites
from dideban.probe.testlists import Target


async def _echo_server(addresses: list[str]) -> tuple[asyncio.Server, int]:
    body = ("<html><title>echo</title>you are " + " and ".join(addresses) + "</html>").encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nX-Client-Ip: {addresses[0]}\r\n"
            "Connection: close\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_site_echoing_this_machines_addresses_is_recorded_scrubbed(tmp_path: Path) -> None:
    addresses = local_addresses()
    if not addresses:
        pytest.skip("this machine has no non-loopback address to leak")
    server, port = await _echo_server(addresses)
    with socket.socket() as closed:  # a test helper that is not there: control fails
        closed.bind(("127.0.0.1", 0))
        helper = f"http://127.0.0.1:{closed.getsockname()[1]}/"
    out = tmp_path / "m.jsonl"
    async with server:
        run = WebsitesRun(
            [Target(f"http://127.0.0.1:{port}/", "MISC")], out, None, helper, 1, show_progress=False
        )
        results = await run_websites(run)
    assert len(results) == 1
    text = out.read_text(encoding="utf-8")
    assert "you are 127.0.0.1" in text  # the echo was recorded, with the address replaced
    for address in addresses:
        assert address not in text
