"""DNS transports: UDP (keeps listening after the first reply), DoH, and the lab stub resolver.

dnspython is used for the wire format only; sockets are ours. DNS over UDP returns EVERY reply
that matches the query id, each with its arrival time and raw bytes: an on-path injector's
forged answer and the real one race, and both must be recorded (OONI's
x_dns_duplicate_responses). So after the first reply we keep listening for
`listen_after_first` seconds (>= 500 ms by default) instead of returning at once.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import secrets
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from dideban.model import failures
from dideban.netx.errors import NetxFailure, classify
from dideban.netx.network import Conn, Network, is_ip


@dataclass(frozen=True)
class Answer:
    """One resource record of a reply: `answer_type` "A"/"AAAA"/"CNAME", `value` the address
    or target hostname, `ttl` in seconds."""

    answer_type: str
    value: str
    ttl: int | None


@dataclass(frozen=True)
class ParsedReply:
    """A decoded reply: `failure` is None or the OONI DNS failure for its rcode/emptiness;
    `answers` the records of the answer section (A/AAAA/CNAME)."""

    rcode: int
    answers: tuple[Answer, ...]
    failure: str | None

    def addresses(self) -> list[str]:
        return [a.value for a in self.answers if a.answer_type in ("A", "AAAA")]


@dataclass(frozen=True)
class Reply:
    """One datagram received for the query: `t` on the network's clock, raw `data`."""

    t: float
    data: bytes


_RCODE_FAILURE = {
    dns.rcode.NXDOMAIN: failures.DNS_NXDOMAIN_ERROR,
    dns.rcode.SERVFAIL: failures.DNS_SERVFAIL_ERROR,
    dns.rcode.REFUSED: failures.DNS_REFUSED_ERROR,
}


@functools.lru_cache(maxsize=4096)
def _query_template(domain: str, qtype: str) -> bytes:
    msg = dns.message.make_query(domain, qtype)
    msg.flags |= dns.flags.RD
    return bytes(msg.to_wire())


def build_query(domain: str, qtype: str) -> tuple[int, bytes]:
    """A recursive query for `domain`/`qtype` ("A", "AAAA"): (id, wire bytes) with a fresh
    random id. The wire is built by dnspython once per (domain, qtype) and cached: building
    it is the costliest part of a lookup on loopback."""
    qid = secrets.randbits(16)
    return qid, qid.to_bytes(2, "big") + _query_template(domain, qtype)[2:]


def reply_id(data: bytes) -> int | None:
    """The DNS id of a datagram, None if too short to be DNS."""
    return int.from_bytes(data[:2], "big") if len(data) >= 12 else None


def parse_reply(data: bytes, qtype: str) -> ParsedReply:
    """Decode a reply to a `qtype` query. Never raises: garbage gives an unknown_failure.
    Results are cached by the reply's bytes after its id (the same answer comes back for the
    system, UDP and HTTP lookups of a measurement), since dnspython's decoder is slow."""
    return _parse_cached(data[2:], qtype) if len(data) >= 12 else _parse(data, qtype)


@functools.lru_cache(maxsize=4096)
def _parse_cached(tail: bytes, qtype: str) -> ParsedReply:
    return _parse(b"\0\0" + tail, qtype)


def _parse(data: bytes, qtype: str) -> ParsedReply:
    try:
        msg = dns.message.from_wire(data)
    except (dns.exception.DNSException, ValueError) as exc:
        return ParsedReply(-1, (), failures.unknown_failure(f"bad dns reply: {exc}"))
    rcode = msg.rcode()
    answers: list[Answer] = []
    for rrset in msg.answer:
        kind = dns.rdatatype.to_text(rrset.rdtype)
        if kind not in ("A", "AAAA", "CNAME"):
            continue
        for rd in rrset:
            value = rd.to_text().rstrip(".") if kind == "CNAME" else rd.to_text()
            answers.append(Answer(kind, value, rrset.ttl))
    failure = _RCODE_FAILURE.get(rcode)
    if failure is None and rcode != dns.rcode.NOERROR:
        failure = failures.unknown_failure(f"dns rcode {dns.rcode.to_text(rcode)}")
    if failure is None and not any(a.answer_type == qtype for a in answers):
        failure = failures.DNS_NO_ANSWER
    return ParsedReply(rcode, tuple(answers), failure)


class _Collect(asyncio.DatagramProtocol):
    def __init__(self, network: Network, qid: int) -> None:
        self.network = network
        self.qid = qid
        self.replies: list[Reply] = []
        self.first = asyncio.get_running_loop().create_future()
        self.error: Exception | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if reply_id(data) != self.qid:
            return
        self.replies.append(Reply(self.network.clock.now(), data))
        if not self.first.done():
            self.first.set_result(None)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable etc.: remember it; only fatal if nothing arrives.
        self.error = exc
        if not self.first.done():
            self.first.set_exception(exc)


async def udp_exchange(
    network: Network,
    resolver: str,
    query: bytes,
    *,
    timeout: float | None = None,
    listen_after_first: float | None = None,
    retransmit_after: float | None = None,
) -> list[Reply]:
    """Send `query` to `resolver` ("ip:port") over UDP and return every reply matching its id,
    in arrival order, listening `listen_after_first` s after the first one. With
    `retransmit_after`, the query is sent once more if nothing came by then (as an OS stub
    resolver does; a measurement sends once). Raises `NetxFailure` (generic_timeout_error when
    nothing came; LAB_DESTINATION_REFUSED in a lab for a resolver the lab does not know,
    without creating a socket)."""
    host, port = network.udp_target(resolver)
    timeout = network.timeouts.dns if timeout is None else timeout
    linger = (
        network.timeouts.udp_listen_after_first
        if listen_after_first is None
        else (listen_after_first)
    )
    qid = reply_id(query)
    if qid is None:
        raise ValueError("query too short to be DNS")
    loop = asyncio.get_running_loop()
    try:
        transport, proto = await loop.create_datagram_endpoint(
            lambda: _Collect(network, qid), remote_addr=(host, port)
        )
    except OSError as exc:
        raise NetxFailure(classify(exc)) from exc
    try:
        transport.sendto(query)
        resend = (
            loop.call_later(retransmit_after, transport.sendto, query)
            if retransmit_after is not None and 0 < retransmit_after < timeout
            else None
        )
        try:
            await asyncio.wait_for(asyncio.shield(proto.first), timeout)
        except Exception as exc:
            if not proto.replies:
                raise NetxFailure(classify(exc)) from exc
        finally:
            if resend is not None:
                resend.cancel()
        if linger > 0:
            await asyncio.sleep(linger)
        return list(proto.replies)
    finally:
        transport.close()
        if not proto.first.done():
            proto.first.cancel()
        elif not proto.first.cancelled():
            proto.first.exception()  # retrieved: no "never retrieved" warning


async def tcp_exchange(
    network: Network, resolver: str, query: bytes, *, timeout: float | None = None
) -> bytes:
    """DNS over TCP (RFC 7766: two-byte length prefix) to `resolver` ("ip:port"), with the
    same destination policy as UDP; returns the raw reply. Raises `NetxFailure`."""
    host, port = network.udp_target(resolver)
    timeout = network.timeouts.dns if timeout is None else timeout
    conn: Conn | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            conn = Conn(reader, writer, resolver)
            writer.write(len(query).to_bytes(2, "big") + query)
            await writer.drain()
            size = int.from_bytes(await reader.readexactly(2), "big")
            return await reader.readexactly(size)
    except Exception as exc:
        raise NetxFailure(classify(exc)) from exc
    finally:
        if conn is not None:
            await conn.close()


async def doh_exchange(
    network: Network, url: str, query: bytes, *, timeout: float | None = None
) -> bytes:
    """POST `query` as application/dns-message to the DoH `url` (RFC 8484) over our own HTTP
    client; returns the raw reply. Raises `NetxFailure` (HTTP status != 200 is a failure)."""
    from dideban.netx.http import api_request

    response = await api_request(
        network,
        "POST",
        url,
        body=query,
        headers=[
            ("Content-Type", "application/dns-message"),
            ("Accept", "application/dns-message"),
        ],
        timeout=timeout,
        measurement_dialer=True,
    )
    if response.status != 200:
        raise NetxFailure(failures.unknown_failure(f"doh http status {response.status}"))
    return response.body


def doh_get_url(url: str, query: bytes) -> str:
    """The RFC 8484 GET form of a query (`?dns=` base64url without padding)."""
    encoded = base64.urlsafe_b64encode(query).rstrip(b"=").decode("ascii")
    return f"{url}{'&' if '?' in url else '?'}dns={encoded}"


class StubResolver:
    """A system-resolver stand-in asking one resolver over UDP (A then AAAA, first reply each),
    for the userspace lab where getaddrinfo cannot be redirected."""

    def __init__(self, network: Network, resolver: str) -> None:
        self.network = network
        self.resolver = resolver

    async def _one(self, host: str, qtype: str, timeout: float) -> ParsedReply:
        _qid, wire = build_query(host, qtype)
        # Like the C library's stub (RES_OPTIONS attempts), ask again if the first datagram
        # went unanswered for a while: UDP to a busy resolver may be dropped.
        replies = await udp_exchange(
            self.network,
            self.resolver,
            wire,
            timeout=timeout,
            listen_after_first=0,
            retransmit_after=timeout / 2,
        )
        return parse_reply(replies[0].data, qtype)

    async def lookup(self, host: str, timeout: float) -> list[str]:
        if is_ip(host):
            return [host]
        if host == "localhost":
            return ["127.0.0.1"]
        results = await asyncio.gather(
            self._one(host, "A", timeout), self._one(host, "AAAA", timeout), return_exceptions=True
        )
        addrs: list[str] = []
        failure: str | None = None
        for result in results:
            if isinstance(result, BaseException):
                failure = failure or classify(result)
                continue
            addrs.extend(a for a in result.addresses() if a not in addrs)
            if result.failure and result.failure != failures.DNS_NO_ANSWER:
                failure = failure or result.failure
        if addrs:
            return addrs
        raise NetxFailure(failure or failures.DNS_NO_ANSWER)
