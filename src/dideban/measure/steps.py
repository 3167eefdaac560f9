"""Measurement steps: each performs one operation through `dideban.netx`, appends OONI
archival records to the `Trace`, and returns a small result. Failures are returned as OONI
strings (the `failure` field), never raised."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from dideban.measure.trace import Trace, encode_body, encode_headers
from dideban.model import failures
from dideban.netx import (
    MAX_BODY,
    MAX_REDIRECTS,
    Conn,
    HTTPResponse,
    Network,
    NetxFailure,
    TLSInfo,
    build_query,
    classify,
    doh_exchange,
    http_roundtrip,
    join_hostport,
    next_location,
    parse_reply,
    parse_url,
    set_cookies,
    tcp_exchange,
    udp_exchange,
)
from dideban.netx import tls_handshake as netx_tls_handshake
from dideban.netx.network import is_ip


@dataclass
class DNSLookupResult:
    """`addrs`: the addresses of the (first) answers, IPv4 first; `failure`: None or the OONI
    string (set only when no address was found). For UDP, `replies` holds the query record of
    every reply received and `duplicates` those beyond the first per query type."""

    addrs: list[str]
    failure: str | None
    replies: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TCPConnectResult:
    """`conn` is open when `failure` is None (the caller closes it)."""

    conn: Conn | None
    failure: str | None
    transaction_id: int


@dataclass
class TLSHandshakeResult:
    info: TLSInfo | None
    failure: str | None


@dataclass
class HTTPFetchResult:
    """The last hop's `response` (None if it failed), the URL it was for, the `failure` of the
    fetch (None on success), and how many requests were made."""

    url: str
    response: HTTPResponse | None
    failure: str | None
    hops: int


def _answers(trace: Trace, values: list[tuple[str, str, int | None]]) -> list[dict[str, Any]]:
    return [trace.answer(kind, value, ttl) for kind, value, ttl in values]


def _order(addrs: list[str]) -> list[str]:
    return sorted(dict.fromkeys(addrs), key=lambda a: ":" in a)


async def dns_lookup_system(network: Network, trace: Trace, domain: str) -> DNSLookupResult:
    """Resolve `domain` with the network's system resolver (getaddrinfo, or the lab stub);
    records one query (engine "getaddrinfo", query_type "ANY")."""
    txid = trace.next_id()
    t0 = network.clock.now()
    addrs: list[str] = []
    failure: str | None = None
    try:
        addrs = await network.resolver.lookup(domain, network.timeouts.dns)
    except NetxFailure as exc:
        failure = exc.failure
    t = network.clock.now()
    answers: list[tuple[str, str, int | None]] = [
        ("AAAA" if ":" in a else "A", a, None) for a in addrs
    ]
    trace.add_query(
        engine="getaddrinfo",
        hostname=domain,
        query_type="ANY",
        answers=_answers(trace, answers),
        failure=failure,
        resolver_address="",
        t0=t0,
        t=t,
        transaction_id=txid,
    )
    return DNSLookupResult(_order(addrs), failure)


def _record_reply(
    trace: Trace,
    engine: str,
    domain: str,
    qtype: str,
    resolver: str,
    t0: float,
    t: float,
    txid: int,
    data: bytes,
) -> tuple[dict[str, Any], list[str], str | None]:
    """Record one DNS reply as a query entry; returns the entry, the reply's addresses of
    `qtype`'s family and its failure (None for an answer)."""
    parsed = parse_reply(data, qtype)
    record = trace.add_query(
        engine=engine,
        hostname=domain,
        query_type=qtype,
        answers=_answers(trace, [(a.answer_type, a.value, a.ttl) for a in parsed.answers]),
        failure=parsed.failure,
        resolver_address=resolver,
        t0=t0,
        t=t,
        transaction_id=txid,
        raw_response=data,
    )
    addrs = [a for a in parsed.addresses() if (":" in a) == (qtype == "AAAA")]
    return record, addrs, parsed.failure


def _record_no_reply(
    trace: Trace,
    engine: str,
    domain: str,
    qtype: str,
    resolver: str,
    t0: float,
    t: float,
    txid: int,
    failure: str,
) -> dict[str, Any]:
    """Record a DNS exchange that got no reply (timeout, refused, ...) as a query entry."""
    return trace.add_query(
        engine=engine,
        hostname=domain,
        query_type=qtype,
        answers=[],
        failure=failure,
        resolver_address=resolver,
        t0=t0,
        t=t,
        transaction_id=txid,
    )


async def _udp_one(
    network: Network, trace: Trace, domain: str, resolver: str, qtype: str
) -> tuple[list[str], str | None, list[dict[str, Any]]]:
    txid = trace.next_id()
    _qid, wire = build_query(domain, qtype)
    t0 = network.clock.now()
    try:
        replies = await udp_exchange(network, resolver, wire)
    except NetxFailure as exc:
        now = network.clock.now()
        record = _record_no_reply(trace, "udp", domain, qtype, resolver, t0, now, txid, exc.failure)
        return [], exc.failure, [record]
    records: list[dict[str, Any]] = []
    first_addrs: list[str] = []
    first_failure: str | None = None
    for i, reply in enumerate(replies):
        record, addrs, failure = _record_reply(
            trace, "udp", domain, qtype, resolver, t0, reply.t, txid, reply.data
        )
        records.append(record)
        if i == 0:
            first_addrs, first_failure = addrs, failure
    return first_addrs, first_failure, records


async def dns_lookup_udp(
    network: Network,
    trace: Trace,
    domain: str,
    resolver: str | None = None,
    query_types: tuple[str, ...] = ("A", "AAAA"),
) -> DNSLookupResult:
    """Ask `resolver` ("ip:port", default the network's resolver) over UDP, one query per type,
    in parallel. Every reply becomes a query record (engine "udp", raw_response). `addrs` come
    from the first reply of each type (the one a stub resolver would use)."""
    resolver = resolver or network.resolver_address
    if not resolver:
        raise ValueError("no resolver address: pass resolver='ip:port'")
    results = await asyncio.gather(
        *(_udp_one(network, trace, domain, resolver, q) for q in query_types)
    )
    addrs: list[str] = []
    fails: list[str] = []
    replies: list[dict[str, Any]] = []
    duplicates: list[dict[str, Any]] = []
    for found, failure, records in results:
        addrs.extend(found)
        if failure is not None:
            fails.append(failure)
        replies.extend(records)
        duplicates.extend(records[1:])
    failure = None if addrs else _dns_failure(fails)
    return DNSLookupResult(_order(addrs), failure, replies, duplicates)


def _dns_failure(fails: list[str]) -> str:
    # The most telling failure: NXDOMAIN beats "no answer" (which AAAA often gives alone).
    for f in fails:
        if f != failures.DNS_NO_ANSWER:
            return f
    return fails[0] if fails else failures.DNS_NO_ANSWER


async def dns_lookup_tcp(
    network: Network,
    trace: Trace,
    domain: str,
    resolver: str | None = None,
    query_types: tuple[str, ...] = ("A", "AAAA"),
) -> DNSLookupResult:
    """DNS over TCP to `resolver` (default the network's); one query record per type
    (engine "tcp")."""
    endpoint = resolver or network.resolver_address
    if not endpoint:
        raise ValueError("no resolver address: pass resolver='ip:port'")
    return await _lookup_exchange(
        network, trace, domain, "tcp", endpoint, query_types,
        lambda wire: tcp_exchange(network, endpoint, wire),
    )  # fmt: skip


async def _lookup_exchange(
    network: Network,
    trace: Trace,
    domain: str,
    engine: str,
    resolver_address: str,
    query_types: tuple[str, ...],
    exchange: Callable[[bytes], Awaitable[bytes]],
) -> DNSLookupResult:
    async def one(qtype: str) -> tuple[list[str], str | None]:
        txid = trace.next_id()
        _qid, wire = build_query(domain, qtype)
        t0 = network.clock.now()
        args = (trace, engine, domain, qtype, resolver_address, t0)
        try:
            data = await exchange(wire)
        except NetxFailure as exc:
            _record_no_reply(*args, network.clock.now(), txid, exc.failure)
            return [], exc.failure
        _record, addrs, failure = _record_reply(*args, network.clock.now(), txid, data)
        return addrs, failure

    results = await asyncio.gather(*(one(q) for q in query_types))
    addrs = [a for found, _ in results for a in found]
    fails = [f for _, f in results if f is not None]
    return DNSLookupResult(_order(addrs), None if addrs else _dns_failure(fails))


async def dns_lookup_doh(
    network: Network,
    trace: Trace,
    domain: str,
    url: str,
    query_types: tuple[str, ...] = ("A", "AAAA"),
) -> DNSLookupResult:
    """DNS over HTTPS (POST application/dns-message to `url`); one query record per type
    (engine "doh", resolver_address = url)."""
    return await _lookup_exchange(
        network, trace, domain, "doh", url, query_types,
        lambda wire: doh_exchange(network, url, wire),
    )  # fmt: skip


async def tcp_connect(network: Network, trace: Trace, ip: str, port: int) -> TCPConnectResult:
    """Connect to `ip:port` with the network's dialer; records a tcp_connect entry and a
    "connect" network event."""
    txid = trace.next_id()
    t0 = network.clock.now()
    conn: Conn | None = None
    failure: str | None = None
    try:
        conn = await network.dialer.dial(ip, port, network.timeouts.connect)
    except NetxFailure as exc:
        failure = exc.failure
    t = network.clock.now()
    trace.tcp_connect.append(
        {
            "ip": ip,
            "port": port,
            "status": {"success": failure is None, "failure": failure},
            "t0": trace.elapsed(t0),
            "t": trace.elapsed(t),
            "tags": trace.tags,
            "transaction_id": txid,
        }
    )
    trace.add_event(
        "connect",
        address=join_hostport(ip, port),
        failure=failure,
        t0=t0,
        t=t,
        transaction_id=txid,
    )
    return TCPConnectResult(conn, failure, txid)


async def tls_handshake(
    network: Network,
    trace: Trace,
    conn: Conn,
    server_name: str,
    *,
    alpn: tuple[str, ...] = ("http/1.1",),
    verify: bool = True,
    transaction_id: int | None = None,
) -> TLSHandshakeResult:
    """TLS over `conn` with SNI `server_name`; records a tls_handshakes entry (certificates
    base64 DER, leaf first) and a "tls_handshake_done" event. On failure the caller should
    close `conn`."""
    txid = trace.next_id() if transaction_id is None else transaction_id
    t0 = network.clock.now()
    info: TLSInfo | None = None
    failure: str | None = None
    try:
        info = await netx_tls_handshake(network, conn, server_name, alpn=alpn, verify=verify)
    except NetxFailure as exc:
        failure = exc.failure
    t = network.clock.now()
    trace.tls_handshakes.append(
        {
            "network": "tcp",
            "address": conn.address,
            "server_name": server_name,
            "alpn": list(alpn),
            "cipher_suite": info.cipher_suite if info else "",
            "negotiated_protocol": info.negotiated_protocol if info else "",
            "tls_version": info.tls_version if info else "",
            "peer_certificates": [
                {"format": "base64", "data": _b64(c)}
                for c in (info.peer_certificates if info else [])
            ],
            "no_tls_verify": not verify,
            "failure": failure,
            "t0": trace.elapsed(t0),
            "t": trace.elapsed(t),
            "tags": trace.tags,
            "transaction_id": txid,
        }
    )
    trace.add_event(
        "tls_handshake_done", address=conn.address, failure=failure, t0=t0, t=t,
        transaction_id=txid,
    )  # fmt: skip
    return TLSHandshakeResult(info, failure)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


DEFAULT_HEADERS: list[tuple[str, str]] = [
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.9"),
    (
        "User-Agent",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
    ),
]


def _request_record(
    trace: Trace,
    *,
    url: str,
    address: str,
    alpn: str,
    headers: list[tuple[str, str]],
    response: HTTPResponse | None,
    failure: str | None,
    t0: float,
    t: float,
    txid: int,
) -> dict[str, Any]:
    req_map, req_list = encode_headers(headers)
    if response is not None:
        resp_map, resp_list = encode_headers(response.headers)
        resp: dict[str, Any] = {
            "body": encode_body(response.body),
            "body_is_truncated": response.body_is_truncated,
            "code": response.status,
            "headers_list": resp_list,
            "headers": resp_map,
        }
    else:
        resp = {"body": "", "body_is_truncated": False, "code": 0, "headers_list": [],
                "headers": {}}  # fmt: skip
    return {
        "network": "tcp",
        "address": address,
        "alpn": alpn,
        "failure": failure,
        "request": {
            "body": "",
            "body_is_truncated": False,
            "headers_list": req_list,
            "headers": req_map,
            "method": "GET",
            "tor": {"exit_ip": None, "exit_name": None, "is_tor": False},
            "x_transport": "tcp",
            "url": url,
        },
        "response": resp,
        "t0": trace.elapsed(t0),
        "t": trace.elapsed(t),
        "tags": trace.tags,
        "transaction_id": txid,
    }


async def _one_hop(
    network: Network, trace: Trace, url: str, headers: list[tuple[str, str]], max_body: int
) -> tuple[HTTPResponse | None, str | None]:
    txid = trace.next_id()
    t0 = network.clock.now()
    response: HTTPResponse | None = None
    failure: str | None = None
    address = ""
    alpn = ""
    conn: Conn | None = None
    sent = list(headers)
    try:
        parts = parse_url(url)
        sent = [("Host", parts.host_header), *headers]
        addrs = (
            [parts.host]
            if is_ip(parts.host)
            else await network.resolver.lookup(parts.host, network.timeouts.dns)
        )
        last: str = failures.DNS_NO_ANSWER
        for ip in addrs:
            address = join_hostport(ip, parts.port)
            c0 = network.clock.now()
            try:
                conn = await network.dialer.dial(ip, parts.port, network.timeouts.connect)
            except NetxFailure as exc:
                last = exc.failure
                trace.add_event("connect", address=address, failure=last, t0=c0,
                                t=network.clock.now(), transaction_id=txid)  # fmt: skip
                continue
            trace.add_event("connect", address=address, failure=None, t0=c0,
                            t=network.clock.now(), transaction_id=txid)  # fmt: skip
            break
        if conn is None:
            raise NetxFailure(last)
        if parts.scheme == "https":
            h0 = network.clock.now()
            try:
                info = await netx_tls_handshake(network, conn, parts.host)
            except NetxFailure as exc:
                trace.add_event("tls_handshake_done", address=address, failure=exc.failure,
                                t0=h0, t=network.clock.now(), transaction_id=txid)  # fmt: skip
                raise
            trace.add_event("tls_handshake_done", address=address, failure=None, t0=h0,
                            t=network.clock.now(), transaction_id=txid)  # fmt: skip
            alpn = info.negotiated_protocol
        response = await http_roundtrip(
            conn, "GET", parts.target, sent, timeout=network.timeouts.http, max_body=max_body
        )
    except NetxFailure as exc:
        failure = exc.failure
    except ValueError as exc:
        failure = failures.unknown_failure(f"bad url: {exc}")
    except Exception as exc:  # a bug or an unexpected error: still data, never a crash
        failure = classify(exc)
    finally:
        if conn is not None:
            await conn.close()
    t = network.clock.now()
    trace.add_event("http_transaction_done", address=address, failure=failure, t0=t0, t=t,
                    transaction_id=txid)  # fmt: skip
    record = _request_record(
        trace, url=url, address=address, alpn=alpn, headers=sent, response=response,
        failure=failure, t0=t0, t=t, txid=txid,
    )  # fmt: skip
    # OONI lists requests newest first.
    trace.requests.insert(0, record)
    return response, failure


async def http_fetch(
    network: Network,
    trace: Trace,
    url: str,
    headers: list[tuple[str, str]] | None = None,
    *,
    max_redirects: int = MAX_REDIRECTS,
    max_body: int = MAX_BODY,
) -> HTTPFetchResult:
    """GET `url` (Host header first, then `headers`, default browser-like ones), following up
    to `max_redirects` redirects; each hop resolves its host with the network's system resolver
    and is recorded as a request entry, newest first. More redirects than allowed fail with
    http_too_many_redirects."""
    # Host comes from each hop's URL; cookies set along the chain go back to their host, as a
    # browser (and OONI's cookie jar) would, or some sites redirect forever.
    send = [
        (k, v)
        for k, v in (DEFAULT_HEADERS if headers is None else headers)
        if k.lower() not in ("host", "cookie")
    ]
    jar: dict[str, dict[str, str]] = {}
    current = url
    hops = 0
    while True:
        host = _host_or_empty(current)
        cookies = jar.get(host)
        hop_headers = send
        if cookies:
            cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
            hop_headers = [*send, ("Cookie", cookie)]
        response, failure = await _one_hop(network, trace, current, hop_headers, max_body)
        hops += 1
        if response is None:
            return HTTPFetchResult(current, None, failure, hops)
        new_cookies = set_cookies(response.headers)
        if new_cookies:
            jar.setdefault(host, {}).update(new_cookies)
        try:
            nxt = next_location(current, response.status, response.headers)
        except NetxFailure as exc:
            return HTTPFetchResult(current, response, exc.failure, hops)
        if nxt is None:
            return HTTPFetchResult(current, response, None, hops)
        if hops > max_redirects:
            return HTTPFetchResult(current, response, failures.HTTP_TOO_MANY_REDIRECTS, hops)
        current = nxt


def _host_or_empty(url: str) -> str:
    try:
        return parse_url(url).host
    except ValueError:
        return ""
