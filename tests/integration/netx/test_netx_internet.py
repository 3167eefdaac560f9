"""netx/measure and the test helper on the real Internet (opt-in: DIDEBAN_INTERNET_TESTS=1)."""

from __future__ import annotations

import os

import httpx
import pytest

from dideban.measure import Trace, dns_lookup_system, http_fetch, tcp_connect, tls_handshake
from dideban.netx import make_network
from dideban.testhelper import create_app

pytestmark = [
    pytest.mark.internet,
    pytest.mark.skipif(
        os.environ.get("DIDEBAN_INTERNET_TESTS") != "1", reason="set DIDEBAN_INTERNET_TESTS=1"
    ),
]


async def test_real_https_fetch_records_a_chain() -> None:
    network = make_network()
    trace = Trace(network.clock)
    dns = await dns_lookup_system(network, trace, "example.org")
    assert dns.failure is None and dns.addrs
    conn = await tcp_connect(network, trace, dns.addrs[0], 443)
    assert conn.conn is not None, conn.failure
    try:
        hs = await tls_handshake(network, trace, conn.conn, "example.org")
    finally:
        await conn.conn.close()
    assert hs.failure is None and len(trace.tls_handshakes[0]["peer_certificates"]) >= 2
    result = await http_fetch(network, trace, "https://example.org/")
    assert result.failure is None and result.response is not None
    assert result.response.status == 200


async def test_real_control_request() -> None:
    app = create_app(make_network())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://th") as c:
        r = await c.post("/", json={"http_request": "https://example.org/", "tcp_connect": []})
    body = r.json()
    assert body["dns"]["failure"] is None and body["dns"]["addrs"]
    assert body["http_request"]["status_code"] == 200
    assert all(v["status"] for v in body["tls_handshake"].values())
