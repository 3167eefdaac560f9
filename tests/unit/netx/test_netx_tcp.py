"""TCP and HTTP failures on loopback: refused, reset after accept, read timeout, EOF."""

from __future__ import annotations

import asyncio
import socket

import pytest
from netx_kit import linger_zero, tcp_server

from dideban.measure import Trace, http_fetch, tcp_connect
from dideban.model import failures
from dideban.netx import make_network
from dideban.netx.errors import NetxFailure
from dideban.netx.http import http_roundtrip
from dideban.netx.network import Conn


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_closed_port_is_connection_refused() -> None:
    network = make_network(timeouts={"connect": 1.0})
    trace = Trace(network.clock)
    result = await tcp_connect(network, trace, "127.0.0.1", _closed_port())
    assert result.conn is None and result.failure == failures.CONNECTION_REFUSED
    (record,) = trace.tcp_connect
    assert record["status"] == {"success": False, "failure": failures.CONNECTION_REFUSED}
    assert record["ip"] == "127.0.0.1" and record["t"] >= record["t0"] >= 0


async def test_reset_after_accept_is_connection_reset() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        linger_zero(writer)
        writer.transport.abort()

    network = make_network(timeouts={"connect": 1.0, "http": 1.0})
    async with tcp_server(reset) as port:
        result = await http_fetch(network, Trace(network.clock), f"http://127.0.0.1:{port}/")
    assert result.failure == failures.CONNECTION_RESET


async def test_read_timeout_is_generic_timeout_error() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    network = make_network(timeouts={"connect": 1.0, "http": 0.2})
    trace = Trace(network.clock)
    async with tcp_server(silent) as port:
        result = await http_fetch(network, trace, f"http://127.0.0.1:{port}/")
    assert result.failure == failures.GENERIC_TIMEOUT_ERROR
    assert trace.requests[0]["failure"] == failures.GENERIC_TIMEOUT_ERROR
    assert trace.requests[0]["response"]["code"] == 0


async def test_close_without_response_is_eof_error() -> None:
    async def hangup(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")

    network = make_network(timeouts={"connect": 1.0, "http": 1.0})
    async with tcp_server(hangup) as port:
        result = await http_fetch(network, Trace(network.clock), f"http://127.0.0.1:{port}/")
    assert result.failure == failures.EOF_ERROR


async def test_a_request_the_server_never_reads_times_out() -> None:
    """`timeout` bounds sending the request too: a body the peer never reads (the socket
    buffers fill, the write waits) ends in generic_timeout_error after `timeout`."""

    async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async with tcp_server(deaf) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = Conn(reader, writer, f"127.0.0.1:{port}")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(NetxFailure) as caught:
            # (wait_for: a regression fails the test instead of hanging it)
            await asyncio.wait_for(
                http_roundtrip(conn, "POST", "/", [("Host", "x")], b"x" * (64 << 20), timeout=0.3),
                10,
            )
        await conn.close()
    assert caught.value.failure == failures.GENERIC_TIMEOUT_ERROR
    assert loop.time() - t0 < 5
