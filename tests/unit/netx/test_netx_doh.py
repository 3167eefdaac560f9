"""DNS over HTTPS against a local Starlette DoH server on uvicorn (TLS from a throwaway CA)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from netx_kit import CA
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dideban.measure import Trace, dns_lookup_doh
from dideban.model import failures
from dideban.netx import make_network


async def dns_query(request: Request) -> Response:
    if request.headers.get("content-type") != "application/dns-message":
        return Response(status_code=415)
    query = dns.message.from_wire(await request.body())
    reply = dns.message.make_response(query)
    q = query.question[0]
    name = q.name.to_text().rstrip(".")
    if name != "doh.example":
        reply.set_rcode(dns.rcode.NXDOMAIN)
    elif dns.rdatatype.to_text(q.rdtype) == "A":
        reply.answer.append(dns.rrset.from_text_list(q.name, 30, "IN", "A", ["198.51.100.53"]))
    return Response(reply.to_wire(), media_type="application/dns-message")


@contextlib.asynccontextmanager
async def doh_server(ca: CA, tmp: Path) -> AsyncIterator[int]:
    cert = ca.ca.issue(["127.0.0.1", "localhost"])
    (tmp / "doh.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "doh.key").write_bytes(ca.ca.leaf_key_pem)
    app = Starlette(routes=[Route("/dns-query", dns_query, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        ssl_certfile=str(tmp / "doh.crt"),
        ssl_keyfile=str(tmp / "doh.key"),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(300):
            if server.started:
                break
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 5)
        sock.close()


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return CA(tmp_path)


async def test_doh_lookup(ca: CA, tmp_path: Path) -> None:
    async with doh_server(ca, tmp_path) as port:
        network = make_network(timeouts={"dns": 2.0, "http": 2.0}, extra_ca_pem=ca.pem)
        trace = Trace(network.clock)
        url = f"https://127.0.0.1:{port}/dns-query"
        ok = await dns_lookup_doh(network, trace, "doh.example", url)
        missing = await dns_lookup_doh(network, Trace(network.clock), "nope.example", url)
    assert ok.failure is None and ok.addrs == ["198.51.100.53"]
    a = next(q for q in trace.queries if q["query_type"] == "A")
    assert a["engine"] == "doh" and a["resolver_address"] == url
    assert a["answers"][0]["ipv4"] == "198.51.100.53" and a["answers"][0]["ttl"] == 30
    aaaa = next(q for q in trace.queries if q["query_type"] == "AAAA")
    assert aaaa["failure"] == failures.DNS_NO_ANSWER
    assert missing.failure == failures.DNS_NXDOMAIN_ERROR


async def test_doh_untrusted_server_fails_with_tls_error(ca: CA, tmp_path: Path) -> None:
    async with doh_server(ca, tmp_path) as port:
        network = make_network(timeouts={"dns": 2.0, "http": 2.0})  # lab CA not trusted
        result = await dns_lookup_doh(
            network, Trace(network.clock), "doh.example", f"https://127.0.0.1:{port}/dns-query"
        )
    assert result.failure == failures.SSL_UNKNOWN_AUTHORITY
