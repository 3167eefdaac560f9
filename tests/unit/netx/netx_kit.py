"""Loopback servers for netx/measure/testhelper tests: HTTP(S), DNS over UDP, TLS with a
throwaway CA. Everything listens on 127.0.0.1 with an ephemeral port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives import serialization

from dideban.lab.pki import LabCA

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def tcp_server(handler: Handler, ssl_ctx: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """A TCP (or TLS) server on 127.0.0.1; yields its port."""
    tasks: set[asyncio.Task[None]] = set()

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.CancelledError):
            # Cancelled at teardown: swallowed, or 3.11's stream callback logs the task's
            # CancelledError as an error.
            pass
        finally:
            tasks.discard(task)
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0, ssl=ssl_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


@dataclass
class Page:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    delay: float = 0.0


def http_handler(
    pages: dict[str, Page], seen: list[list[tuple[str, str]]] | None = None
) -> Handler:
    """An HTTP/1.1 server answering `pages[path]` (404 otherwise), one request per connection;
    records each request's header lines in `seen`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        _method, target, _version = lines[0].split(" ", 2)
        if seen is not None:
            seen.append([tuple(x.split(": ", 1)) for x in lines[1:] if x])  # type: ignore[misc]
        length = 0
        for line in lines[1:]:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        if length:
            await reader.readexactly(length)
        page = pages.get(target, Page(404, body=b"not found"))
        if page.delay:
            await asyncio.sleep(page.delay)
        out = [f"HTTP/1.1 {page.status} X".encode()]
        out += [f"{k}: {v}".encode() for k, v in page.headers]
        out += [f"Content-Length: {len(page.body)}".encode(), b"Connection: close", b"", b""]
        writer.write(b"\r\n".join(out) + page.body)
        await writer.drain()

    return handle


class CA:
    """A throwaway CA (the lab's) and server contexts for names, written under `tmp`."""

    def __init__(self, tmp: Path) -> None:
        self.ca = LabCA()
        self.tmp = tmp
        self.pem = self.ca.ca_pem

    def server_context(self, names: list[str], *, expired: bool = False) -> ssl.SSLContext:
        cert = self.ca.issue(names, expired=expired)
        stem = f"{names[0]}-{'old' if expired else 'ok'}"
        cert_path = self.tmp / f"{stem}.crt"
        key_path = self.tmp / f"{stem}.key"
        # The chain file holds the leaf then the CA, as real servers send intermediates.
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + self.pem.encode())
        key_path.write_bytes(self.ca.leaf_key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_path, key_path)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx


# (qname, qtype) -> list of (delay seconds, rcode, [addresses]); the server sends each.
DNSPlan = Callable[[str, str], list[tuple[float, int, list[str]]]]


class _DNSProto(asyncio.DatagramProtocol):
    def __init__(self, plan: DNSPlan) -> None:
        self.plan = plan
        self.transport: Any = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.queries: list[tuple[str, str]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        query = dns.message.from_wire(data)
        q = query.question[0]
        qname = q.name.to_text().rstrip(".")
        qtype = dns.rdatatype.to_text(q.rdtype)
        self.queries.append((qname, qtype))
        for delay, rcode, addrs in self.plan(qname, qtype):
            reply = dns.message.make_response(query)
            reply.set_rcode(rcode)
            if addrs:
                reply.answer.append(dns.rrset.from_text_list(q.name, 60, "IN", qtype, addrs))
            wire = reply.to_wire()
            task = asyncio.get_running_loop().create_task(self._send(delay, wire, addr))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _send(self, delay: float, wire: bytes, addr: tuple[str | int, ...]) -> None:
        await asyncio.sleep(delay)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(wire, addr)


@contextlib.asynccontextmanager
async def dns_server(plan: DNSPlan) -> AsyncIterator[tuple[str, _DNSProto]]:
    """A DNS-over-UDP server on 127.0.0.1 following `plan`; yields ("127.0.0.1:port", proto)."""
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: _DNSProto(plan), local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    try:
        yield f"127.0.0.1:{port}", proto
    finally:
        for task in list(proto.tasks):
            task.cancel()
        await asyncio.gather(*proto.tasks, return_exceptions=True)
        transport.close()


def simple_plan(table: dict[str, list[str]]) -> DNSPlan:
    """Answers A/AAAA from `table` (by address family), NXDOMAIN for unknown names."""

    def plan(qname: str, qtype: str) -> list[tuple[float, int, list[str]]]:
        if qname not in table:
            return [(0.0, dns.rcode.NXDOMAIN, [])]
        want_v6 = qtype == "AAAA"
        return [(0.0, dns.rcode.NOERROR, [a for a in table[qname] if (":" in a) == want_v6])]

    return plan


def linger_zero(writer: asyncio.StreamWriter) -> None:
    """Make close() send a RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
