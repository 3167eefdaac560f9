"""The userspace censorship lab: an emulated censored network on loopback, no root needed.

    probe ──(probe_view routes)──> censor listeners ──> site servers (probe side)
          ──(probe resolver)────> ISP resolver (lies per the scenario)
    helper ─(control_view routes)> site servers (control side)
          ──(control resolver)──> honest resolver

Every listener binds 127.0.0.1 on an ephemeral port; a `LabView` maps each lab address
`ip:port` to the loopback endpoint playing it. Techniques at the IP layer use real kernel
behaviour: `tcp_reset` routes to a port that is bound but not listening (the kernel answers
the SYN with RST: ECONNREFUSED), `tcp_timeout` routes to a listener whose accept queue is full
(Linux drops SYNs to such a listener, so connect times out). The on-path censor reads the
ClientHello SNI or the HTTP Host and then relays, resets (SO_LINGER 0 + close), stalls,
serves Iran's blockpage, or throttles. Every connection is its own task: a stalled TLS
handshake never holds up another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from pathlib import Path
from typing import Literal, cast

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from dideban.lab import wire
from dideban.lab.pki import LabCA, ServerContexts
from dideban.lab.policy import (
    INJECT_TRUE_REPLY_DELAY,
    CensorAction,
    DnsDecision,
    LabPolicy,
    pick_profile,
    site_page,
)
from dideban.lab.scenario import Scenario
from dideban.lab.state import remove_state, write_state
from dideban.model.labnet import LabNetwork, LabView

log = logging.getLogger(__name__)

TIMEOUTS: dict[str, float] = {
    "dns": 2.0,
    "connect": 2.0,
    "tls": 2.0,
    "http": 5.0,
    "udp_listen_after_first": 0.5,
}
# The address the sites see when the control side (test helper) fetches them.
CONTROL_PUBLIC_IP = "198.51.100.254"
FIRST_BYTES_TIMEOUT = 10.0  # the censor waits this long for a ClientHello / request head
STALL_LIMIT = 120.0  # a stalled flow is closed after this (the client gave up long before)
SERVER_READ_TIMEOUT = 10.0

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# --- DNS (pure: query bytes -> replies) --------------------------------------------------


def _reply(query: dns.message.Message, rcode: int, address: str = "") -> bytes:
    r = dns.message.make_response(query)
    r.flags |= dns.flags.RA
    r.set_rcode(dns.rcode.Rcode(rcode))
    if address:
        r.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", address))
    return r.to_wire()


def dns_replies(
    decide: Callable[[str, str], DnsDecision], data: bytes, *, tcp: bool = False
) -> list[tuple[float, bytes]]:
    """The replies (delay in seconds, wire bytes) a resolver sends to the query `data`.

    Zero replies is silence (dns_timeout); two are an injection racing the true answer. Over
    TCP there is one stream, so an injected query gets only the forgery.
    """
    try:
        query = dns.message.from_wire(data)
    except (dns.exception.DNSException, ValueError):
        return []
    if len(query.question) != 1:
        r = dns.message.make_response(query)
        r.set_rcode(dns.rcode.FORMERR)
        return [(0.0, r.to_wire())]
    q = query.question[0]
    decision = decide(q.name.to_text(omit_final_dot=True), dns.rdatatype.to_text(q.rdtype))
    if decision.kind == "silent":
        return []
    if decision.kind == "nxdomain":
        return [(0.0, _reply(query, dns.rcode.NXDOMAIN))]
    if decision.kind == "empty":
        return [(0.0, _reply(query, dns.rcode.NOERROR))]
    if decision.kind == "inject":
        forged = (0.0, _reply(query, dns.rcode.NOERROR, decision.forged))
        if tcp:
            return [forged]
        return [
            forged,
            (INJECT_TRUE_REPLY_DELAY, _reply(query, dns.rcode.NOERROR, decision.address)),
        ]
    return [(0.0, _reply(query, dns.rcode.NOERROR, decision.address))]


class _DnsUdp(asyncio.DatagramProtocol):
    def __init__(self, decide: Callable[[str, str], DnsDecision]) -> None:
        self._decide = decide
        self._transport: asyncio.DatagramTransport | None = None
        self.pending: set[asyncio.TimerHandle] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        for delay, reply in dns_replies(self._decide, data):
            if delay <= 0:
                self._send(reply, addr)
            else:
                self._send_later(loop, delay, reply, addr)

    def _send_later(
        self, loop: asyncio.AbstractEventLoop, delay: float, reply: bytes, addr: tuple[str, int]
    ) -> None:
        def fire() -> None:
            self.pending.discard(handle)
            self._send(reply, addr)

        handle = loop.call_later(delay, fire)
        self.pending.add(handle)

    def _send(self, reply: bytes, addr: tuple[str, int]) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(reply, addr)

    def close(self) -> None:
        for h in self.pending:
            h.cancel()
        if self._transport is not None:
            self._transport.close()


# --- small socket helpers ------------------------------------------------------------------


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST: SO_LINGER on with a zero timeout makes close() abort the connection."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 2.0)


def _http_response(status: str, headers: list[tuple[str, str]], body: bytes, head: bool) -> bytes:
    lines = [f"HTTP/1.1 {status}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    out = "\r\n".join(lines).encode("latin-1")
    return out if head else out + body


def _request_line(head: bytes) -> tuple[str, str]:
    first = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    return (first[0], first[1]) if len(first) >= 2 else ("", "")


def _bind_udp_tcp(attempts: int = 50) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket on the same ephemeral 127.0.0.1 port (DNS serves both)."""
    for _ in range(attempts):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # A 903-site run sends bursts of queries; the default ~212 KB receive buffer overflowed
        # (RcvbufErrors) and lost queries looked like DNS censorship. The kernel caps the value
        # at net.core.rmem_max, which is fine: larger is only better here.
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind(("127.0.0.1", port))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen(128)
        tcp.setblocking(False)
        udp.setblocking(False)
        return udp, tcp
    raise OSError("could not bind a UDP and TCP port pair on 127.0.0.1")


def _full_backlog_listener() -> tuple[socket.socket, list[socket.socket]]:
    """A listener whose accept queue is full, and the connections filling it.

    listen(0) leaves room for one connection that is never accepted; once the queue is full
    Linux drops further SYNs (tcp_conn_request: listen overflow), so connect() times out.
    Fill until a connect really fails to complete, so this holds on any backlog rounding.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    addr = listener.getsockname()
    held: list[socket.socket] = []
    for _ in range(16):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(0.1)
        try:
            c.connect(addr)
        except OSError:
            c.close()
            if held:  # the queue is full: this SYN was dropped
                return listener, held
            continue  # not even one got in: a fluke of a busy machine, try again
        held.append(c)
    for c in held:
        c.close()
    listener.close()
    raise OSError("could not fill a listener's accept queue (tcp_timeout needs it)")


def _port(server: asyncio.base_events.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


# --- the lab ------------------------------------------------------------------------------


class UserspaceLab:
    """`async with UserspaceLab(scenario) as lab: lab.network` runs the lab for the block.

    `profile` names one of the scenario's ISP profiles (its ASN and TLS-blocking style);
    `state_dir` (if given) receives `<name>.json` while the lab runs (see `state.py`).
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        state_dir: Path | None = None,
        profile: str | None = None,
    ) -> None:
        self.scenario = scenario
        self.profile = pick_profile(scenario, profile)
        self.policy = LabPolicy(scenario, self.profile)
        self.state_dir = state_dir
        self._network: LabNetwork | None = None
        self._servers: list[asyncio.base_events.Server] = []
        self._udp: list[_DnsUdp] = []
        self._sockets: list[socket.socket] = []
        self._conns: set[asyncio.Task[None]] = set()
        self._contexts: ServerContexts | None = None
        self._ports: dict[str, int] = {}
        self.startup_seconds = 0.0

    @property
    def network(self) -> LabNetwork:
        if self._network is None:
            raise RuntimeError("the lab is not running")
        return self._network

    @property
    def ports(self) -> dict[str, int]:
        """The loopback port of each part (for tests and diagnostics)."""
        return dict(self._ports)

    async def __aenter__(self) -> UserspaceLab:
        t0 = time.perf_counter()
        try:
            await self._start()
        except BaseException:
            await self._stop()
            raise
        self.startup_seconds = time.perf_counter() - t0
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()

    # --- startup -----------------------------------------------------------------------

    async def _serve(self, name: str, handler: Handler, ctx: ssl.SSLContext | None = None) -> int:
        server = await asyncio.start_server(
            self._tracked(handler),
            "127.0.0.1",
            0,
            ssl=ctx,
            ssl_handshake_timeout=SERVER_READ_TIMEOUT if ctx else None,
            backlog=1024,
        )
        self._servers.append(server)
        self._ports[name] = _port(server)
        return self._ports[name]

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        ca = LabCA()
        self._contexts = ServerContexts(ca, self.policy.leaf_for)
        tls = self._contexts.default

        # A bound, never-listening socket: the kernel refuses connections to it with RST.
        closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        closed.bind(("127.0.0.1", 0))
        self._sockets.append(closed)
        self._ports["closed"] = closed.getsockname()[1]
        blackhole, held = _full_backlog_listener()
        self._sockets += [blackhole, *held]
        self._ports["blackhole"] = blackhole.getsockname()[1]

        public = self.scenario.probe_public_ip
        await self._serve("site_http", self._site_handler(public), None)
        await self._serve("site_https", self._site_handler(public), tls)
        await self._serve("control_http", self._site_handler(CONTROL_PUBLIC_IP), None)
        await self._serve("control_https", self._site_handler(CONTROL_PUBLIC_IP), tls)
        await self._serve("blockpage", self._blockpage_handler, None)
        await self._serve("censor_http", self._censor_handler("http"), None)
        await self._serve("censor_tls", self._censor_handler("tls"), None)

        for name, decide in (
            ("isp_dns", self.policy.isp_dns),
            ("honest_dns", self.policy.honest_dns),
        ):
            udp_sock, tcp_sock = _bind_udp_tcp()
            self._sockets.append(tcp_sock)  # closed on stop even if start_server fails
            proto = _DnsUdp(decide)
            await loop.create_datagram_endpoint(lambda p=proto: p, sock=udp_sock)  # type: ignore[misc]
            self._udp.append(proto)
            self._servers.append(
                await asyncio.start_server(
                    self._tracked(self._dns_tcp_handler(decide)), sock=tcp_sock
                )
            )
            self._ports[name] = udp_sock.getsockname()[1]

        profile = self.profile
        self._network = LabNetwork(
            name=self.scenario.name,
            probe_cc=self.scenario.probe_cc,
            probe_asn=profile.asn if profile else self.scenario.probe_asn,
            probe_network_name=profile.network_name
            if profile
            else self.scenario.probe_network_name,
            probe_public_ip=public,
            probe_view=LabView(
                routes=self._routes("probe"), resolver=f"127.0.0.1:{self._ports['isp_dns']}"
            ),
            control_view=LabView(
                routes=self._routes("control"), resolver=f"127.0.0.1:{self._ports['honest_dns']}"
            ),
            ca_pem=ca.ca_pem,
            timeouts=dict(TIMEOUTS),
            pid=os.getpid(),
        )
        if self.state_dir is not None:
            write_state(self._network, self.state_dir)

    def _routes(self, view: Literal["probe", "control"]) -> dict[str, str]:
        p = self._ports

        def at(name: str) -> str:
            return f"127.0.0.1:{p[name]}"

        routes: dict[str, str] = {}
        for site in self.scenario.sites:
            techniques = site.techniques() if view == "probe" else set()
            if site.server in ("refused", "nxdomain") or "tcp_reset" in techniques:
                http = https = at("closed")
            elif "tcp_timeout" in techniques:
                http = https = at("blackhole")
            elif view == "probe":
                http, https = at("censor_http"), at("censor_tls")
            else:
                http, https = at("control_http"), at("control_https")
            routes.setdefault(f"{site.ip}:80", http)
            routes.setdefault(f"{site.ip}:443", https)
        if view == "probe":
            # Where a lying answer points: Iran's blockpage server on :80, nothing on :443.
            for ip in sorted(self.policy.forged_answers()):
                routes.setdefault(f"{ip}:80", at("blockpage"))
                routes.setdefault(f"{ip}:443", at("closed"))
        return routes

    # --- shutdown ----------------------------------------------------------------------

    async def _stop(self) -> None:
        if self._network is not None and self.state_dir is not None:
            remove_state(self._network, self.state_dir)
        for server in self._servers:
            server.close()
        for proto in self._udp:
            proto.close()
        conns = list(self._conns)
        for task in conns:
            task.cancel()
        if conns:
            await asyncio.gather(*conns, return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        for s in self._sockets:
            s.close()
        if self._contexts is not None:
            self._contexts.close()
        self._servers, self._udp, self._sockets = [], [], []

    # --- connection handlers ------------------------------------------------------------

    def _tracked(self, handler: Handler) -> Handler:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._conns.add(task)
            try:
                await handler(reader, writer)
            except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError):
                pass  # the peer went away, sent garbage or too little: its problem
            except Exception:
                # A lab server must outlive any one connection; keep the cause for debugging.
                log.debug("lab connection handler failed", exc_info=True)
            except asyncio.CancelledError:
                # The lab is stopping. Ending normally matters: asyncio's stream server
                # calls exception() on this task, which raises for a cancelled one.
                pass
            finally:
                self._conns.discard(task)
                if not writer.transport.is_closing():
                    writer.transport.abort()

        return run

    def _dns_tcp_handler(self, decide: Callable[[str, str], DnsDecision]) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                try:
                    size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 10), "big")
                    data = await asyncio.wait_for(reader.readexactly(size), 10)
                except (asyncio.IncompleteReadError, TimeoutError):
                    break
                replies = dns_replies(decide, data, tcp=True)
                if not replies:  # silence: hold the connection until the client gives up
                    await asyncio.wait_for(reader.read(), STALL_LIMIT)
                    break
                for _, reply in replies:
                    writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
            await _close(writer)

        return handle

    def _site_handler(self, client_ip: str) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), SERVER_READ_TIMEOUT)
            method, _target = _request_line(head)
            host = wire.http_host(head)
            if host in (wire.NEED_MORE, wire.NOT_THIS, ""):
                sslobj = writer.get_extra_info("ssl_object")
                host = (sslobj.server_hostname or "") if sslobj is not None else ""
            site = self.policy.site(host)
            headers = [
                ("Date", formatdate(usegmt=True)),
                ("Server", "dideban-lab"),
                ("Content-Type", "text/html; charset=utf-8"),
            ]
            if site is None:
                body = b"<html><head><title>404 Not Found</title></head><body>no such site</body></html>"
                status = "404 Not Found"
            else:
                peer = writer.get_extra_info("peername")
                peer_s = f"{peer[0]}:{peer[1]}" if peer else ""
                body = site_page(site, client_ip=client_ip, peer=peer_s).encode()
                status = "200 OK"
                if site.echo_client:
                    headers += [("X-Client-IP", client_ip), ("X-Peer-Address", peer_s)]
            writer.write(_http_response(status, headers, body, method == "HEAD"))
            await writer.drain()
            await _close(writer)

        return handle

    def _blockpage_bytes(self, method: str = "GET") -> bytes:
        # Iran's blockpage answers 403 and frames http://10.10.34.34 (OONI fingerprint ir_0).
        return _http_response(
            "403 Forbidden",
            [("Content-Type", "text/html; charset=windows-1256")],
            self.policy.blockpage_html.encode("utf-8"),
            method == "HEAD",
        )

    async def _blockpage_handler(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), SERVER_READ_TIMEOUT)
        writer.write(self._blockpage_bytes(_request_line(head)[0]))
        await writer.drain()
        await _close(writer)

    def _censor_handler(self, kind: Literal["http", "tls"]) -> Handler:
        parse = wire.client_hello_sni if kind == "tls" else wire.http_host
        upstream_port = "site_https" if kind == "tls" else "site_http"

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            buf = b""
            name = wire.NEED_MORE
            deadline = time.monotonic() + FIRST_BYTES_TIMEOUT
            while name == wire.NEED_MORE:
                chunk = await asyncio.wait_for(reader.read(16384), deadline - time.monotonic())
                if not chunk:
                    await _close(writer)
                    return
                buf += chunk
                name = parse(buf)
            if name == wire.NOT_THIS:
                name = ""
            action = self.policy.censor_action(kind, name)
            if action.kind == "reset":
                _reset(writer)
                return
            if action.kind == "drop":
                # Swallow everything: the client sees no answer until it gives up.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(STALL_LIMIT):
                        while await reader.read(65536):
                            pass
                _reset(writer)
                return
            if action.kind == "blockpage":
                writer.write(self._blockpage_bytes(_request_line(buf)[0]))
                await writer.drain()
                await _close(writer)
                return
            await self._relay(reader, writer, buf, self._ports[upstream_port], action)

        return handle

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        first: bytes,
        port: int,
        action: CensorAction,
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            if action.delay_s:
                await asyncio.sleep(action.delay_s)
            up_writer.write(first)
            await up_writer.drain()
            up = asyncio.create_task(_pump(reader, up_writer, 0.0, 0.0))
            down = asyncio.create_task(_pump(up_reader, writer, action.delay_s, action.rate_bps))
            try:
                await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
                # One side finished: give the other a moment to drain, then end the flow.
                await asyncio.wait({up, down}, timeout=30)
            finally:
                for t in (up, down):
                    t.cancel()
                await asyncio.gather(up, down, return_exceptions=True)
        finally:
            up_writer.transport.abort()
            await _close(writer)


async def _pump(
    src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay_s: float, rate_bps: float
) -> None:
    """Copy src to dst; with a rate, pace chunks so the flow never exceeds rate_bps."""
    chunk = max(512, int(rate_bps / 20)) if rate_bps else 65536
    first = True
    try:
        while data := await src.read(chunk):
            if first and delay_s:
                await asyncio.sleep(delay_s)
            first = False
            dst.write(data)
            await dst.drain()
            if rate_bps:
                await asyncio.sleep(len(data) / rate_bps)
        if dst.can_write_eof():
            dst.write_eof()
    except (OSError, RuntimeError):
        pass


def start_lab_in_thread(
    scenario: Scenario, *, profile: str | None = None, state_dir: Path | None = None
) -> tuple[LabNetwork, Callable[[], None]]:
    """Run the lab on its own event loop in a daemon thread; returns (network, stop)."""
    ready = threading.Event()
    result: dict[str, object] = {}
    loop = asyncio.new_event_loop()
    stop_event: asyncio.Event | None = None

    async def main() -> None:
        nonlocal stop_event
        stop_event = asyncio.Event()
        try:
            async with UserspaceLab(scenario, profile=profile, state_dir=state_dir) as lab:
                result["network"] = lab.network
                ready.set()
                await stop_event.wait()
        except BaseException as exc:
            result["error"] = exc
            ready.set()
            if not isinstance(exc, Exception):
                raise

    thread = threading.Thread(
        target=loop.run_until_complete, args=(main(),), name="dideban-lab", daemon=True
    )
    thread.start()
    if not ready.wait(60):
        loop.call_soon_threadsafe(lambda: [t.cancel() for t in asyncio.all_tasks(loop)])
        raise RuntimeError("the lab did not start within 60 s")
    if "error" in result:
        thread.join(5)
        loop.close()
        raise RuntimeError(f"the lab did not start: {result['error']}") from result["error"]  # type: ignore[misc]
    network = result["network"]
    assert isinstance(network, LabNetwork)

    def stop() -> None:
        if thread.is_alive() and stop_event is not None:
            loop.call_soon_threadsafe(stop_event.set)
            thread.join(30)
        if not thread.is_alive() and not loop.is_closed():
            loop.close()

    return network, stop
