"""A bare asyncio DNS + TCP + TLS + HTTP fetch through the lab, recording nothing.

The baseline of `bench/probe_lab.py`: the same sites, through the same lab view (the probe's
resolver and routes), with the same concurrency, but none of the probe's recording, control
request or analysis (`fetch_all`); and `equivalent_all`, the same network operations as
web_connectivity (control POST, connects to every address, the UDP lookup's listening window)
with nothing recorded, to isolate the cost of recording and analysis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import dns.message
import dns.rdatatype

from dideban.model.labnet import LabView

MAX_BODY = 1 << 20


@dataclass
class BareResult:
    url: str
    ok: bool
    status: int = 0
    error: str = ""


class _DNSProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.replies.put_nowait(data)


async def udp_lookup(
    domain: str, resolver: str, timeout: float, listen_after: float = 0.0
) -> tuple[list[str], asyncio.Task[None] | None]:
    """A-record lookup over UDP: the first reply's addresses, and (with `listen_after`) the
    task that keeps the socket open that long after the first reply, as web_connectivity's UDP
    lookup does to catch a real answer racing an injected one."""
    host, port = resolver.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        _DNSProtocol, remote_addr=(host, int(port))
    )
    tail: asyncio.Task[None] | None = None
    try:
        query = dns.message.make_query(domain, dns.rdatatype.A)
        transport.sendto(query.to_wire())
        first = await asyncio.wait_for(proto.replies.get(), timeout)
        reply = dns.message.from_wire(first)
        addrs = [
            r.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for r in rrset
        ]
        if listen_after > 0:

            async def listen() -> None:
                try:
                    await asyncio.sleep(listen_after)
                    while not proto.replies.empty():
                        dns.message.from_wire(proto.replies.get_nowait())
                finally:
                    transport.close()

            tail = asyncio.create_task(listen())
        return addrs, tail
    finally:
        if tail is None:
            transport.close()


async def _connect(
    ip: str, port: int, view: LabView, tls: ssl.SSLContext | None, sni: str | None, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    target = view.route(ip, port)
    if target is None:
        raise ConnectionRefusedError(f"lab refuses {ip}:{port}")
    host, tport = target.rsplit(":", 1)
    return await asyncio.wait_for(
        asyncio.open_connection(host.strip("[]"), int(tport), ssl=tls, server_hostname=sni),
        timeout,
    )


async def _get(
    url: str,
    view: LabView,
    tls: ssl.SSLContext,
    timeouts: dict[str, float],
    tails: list[asyncio.Task[None]],
    listen_after: float,
) -> tuple[int, str | None]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addrs, tail = await udp_lookup(host, view.resolver, timeouts.get("dns", 2.0), listen_after)
    if tail is not None:
        tails.append(tail)
    if not addrs:
        raise LookupError(f"no address for {host}")
    https = parts.scheme == "https"
    reader, writer = await _connect(
        addrs[0],
        port,
        view,
        tls if https else None,
        host if https else None,
        timeouts.get("connect", 2.0) + (timeouts.get("tls", 2.0) if https else 0.0),
    )
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bench\r\nAccept: */*\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        data = await asyncio.wait_for(reader.read(MAX_BODY), timeouts.get("http", 5.0))
        while len(data) < MAX_BODY:
            chunk = await asyncio.wait_for(reader.read(MAX_BODY), timeouts.get("http", 5.0))
            if not chunk:
                break
            data += chunk
    finally:
        writer.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    location = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "location":
            location = urljoin(url, value.strip())
    return status, location


async def bare_fetch(
    url: str,
    view: LabView,
    tls: ssl.SSLContext,
    timeouts: dict[str, float],
    listen_after: float = 0.0,
    on_passive: Callable[[], None] | None = None,
) -> BareResult:
    tails: list[asyncio.Task[None]] = []
    try:
        for _ in range(10):
            status, location = await _get(url, view, tls, timeouts, tails, listen_after)
            if status in (301, 302, 303, 307, 308) and location:
                url = location
                continue
            return BareResult(url, True, status)
        return BareResult(url, False, error="too many redirects")
    except (OSError, TimeoutError, LookupError, ssl.SSLError, ValueError, IndexError) as exc:
        return BareResult(url, False, error=type(exc).__name__)
    finally:
        if tails and on_passive is not None:
            on_passive()  # only DNS listening windows remain: free the slot, as the probe does
        await asyncio.gather(*tails)


def lab_tls_context(ca_pem: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cadata=ca_pem)
    return ctx


async def fetch_all(
    urls: list[str],
    view: LabView,
    ca_pem: str,
    timeouts: dict[str, float],
    concurrency: int,
    listen_after: float = 0.0,
) -> tuple[list[BareResult], float]:
    tls = lab_tls_context(ca_pem)
    results: list[BareResult] = []

    async def one(url: str, release: Callable[[], None]) -> None:
        results.append(await bare_fetch(url, view, tls, timeouts, listen_after, release))

    t0 = time.perf_counter()
    await run_slotted(urls, concurrency, one, ramp=0.0)
    return results, time.perf_counter() - t0


async def run_slotted(
    urls: list[str],
    concurrency: int,
    job: Callable[[str, Callable[[], None]], Awaitable[None]],
    ramp: float,
) -> None:
    """The probe runner's scheduling: at most `concurrency` jobs doing active work; a job
    frees its slot early by calling the release it is given (once only listening remains)."""
    slots = asyncio.Semaphore(concurrency)

    async def run(i: int, url: str) -> None:
        if i < concurrency and ramp > 0:
            await asyncio.sleep(i * ramp)
        await slots.acquire()
        held = [True]

        def release() -> None:
            if held[0]:
                held[0] = False
                slots.release()

        try:
            await job(url, release)
        finally:
            release()

    await asyncio.gather(*(run(i, u) for i, u in enumerate(urls)))


# --- the same operations as web_connectivity, unrecorded ----------------------------------


async def _post_json(helper: str, body: bytes, timeout: float) -> bytes:
    parts = urlsplit(helper)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(parts.hostname, parts.port or 80), timeout
    )
    try:
        writer.write(
            f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def _connect_close(
    ip: str, port: int, view: LabView, tls: ssl.SSLContext | None, sni: str | None, timeout: float
) -> None:
    try:
        _, writer = await _connect(ip, port, view, tls, sni, timeout)
    except (OSError, TimeoutError, ssl.SSLError):
        return
    writer.close()


async def equivalent_fetch(
    url: str,
    view: LabView,
    tls: ssl.SSLContext,
    timeouts: dict[str, float],
    helper: str,
    listen_after: float,
    on_passive: Callable[[], None] | None = None,
) -> BareResult:
    """What web_connectivity does on the network, with nothing recorded or analysed: the web
    step, the UDP lookup with its listening window, a system-like lookup, then the control
    POST and a TCP (+TLS) connect per address."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    https = parts.scheme == "https"
    dns_timeout = timeouts.get("dns", 2.0)
    web = asyncio.create_task(bare_fetch(url, view, tls, timeouts))

    async def udp() -> None:
        with contextlib.suppress(OSError, TimeoutError):
            _, tail = await udp_lookup(host, view.resolver, dns_timeout, listen_after)
            if tail is not None:
                await tail

    udp_task = asyncio.create_task(udp())
    try:
        addrs, _ = await udp_lookup(host, view.resolver, dns_timeout)
    except (OSError, TimeoutError):
        addrs = []
    body = json.dumps(
        {
            "http_request": url,
            "http_request_headers": {"User-Agent": ["bench"]},
            "tcp_connect": [f"{a}:{port}" for a in addrs],
        }
    ).encode()
    connect_timeout = timeouts.get("connect", 2.0) + (timeouts.get("tls", 2.0) if https else 0)
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.gather(
            _post_json(helper, body, timeouts.get("http", 5.0)),
            *(
                _connect_close(a, port, view, tls if https else None, host if https else None,
                               connect_timeout)
                for a in addrs
            ),
        )  # fmt: skip
    result = await web
    if on_passive is not None and not udp_task.done():
        on_passive()
    await udp_task
    return result


async def equivalent_all(
    urls: list[str],
    view: LabView,
    ca_pem: str,
    timeouts: dict[str, float],
    concurrency: int,
    helper: str,
) -> float:
    tls = lab_tls_context(ca_pem)
    listen = timeouts.get("udp_listen_after_first", 0.5)

    async def one(url: str, release: Callable[[], None]) -> None:
        await equivalent_fetch(url, view, tls, timeouts, helper, listen, release)

    t0 = time.perf_counter()
    await run_slotted(urls, concurrency, one, ramp=0.005)  # the probe's ramp-up
    return time.perf_counter() - t0
