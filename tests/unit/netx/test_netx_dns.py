"""DNS over UDP against fake resolvers on 127.0.0.1, and the lab stub resolver."""

from __future__ import annotations

import asyncio

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from netx_kit import dns_server, simple_plan

from dideban.measure import Trace, dns_lookup_udp
from dideban.model import failures
from dideban.model.labnet import LabNetwork, LabView
from dideban.netx import NetxFailure, build_query, make_network, parse_reply, udp_exchange

FORGED = "10.10.34.35"
REAL = "198.51.100.7"


def injected_plan(qname: str, qtype: str) -> list[tuple[float, int, list[str]]]:
    """The injector answers at once with a bogon, the real resolver 50 ms later."""
    if qtype != "A":
        return [(0.0, dns.rcode.NOERROR, [])]
    return [(0.0, dns.rcode.NOERROR, [FORGED]), (0.05, dns.rcode.NOERROR, [REAL])]


def lab(resolver: str) -> LabNetwork:
    view = LabView(routes={}, resolver=resolver)
    return LabNetwork("t", "IR", "AS1", "n", "203.0.113.9", view, view, "")


async def test_udp_exchange_returns_every_reply_with_timestamps() -> None:
    async with dns_server(injected_plan) as (addr, _proto):
        network = make_network(timeouts={"dns": 1.0, "udp_listen_after_first": 0.3})
        _qid, wire = build_query("blocked.example", "A")
        replies = await udp_exchange(network, addr, wire)
    assert len(replies) == 2
    assert replies[0].t <= replies[1].t
    assert parse_reply(replies[0].data, "A").addresses() == [FORGED]
    assert parse_reply(replies[1].data, "A").addresses() == [REAL]


async def test_dns_lookup_udp_records_both_replies() -> None:
    async with dns_server(injected_plan) as (addr, _proto):
        network = make_network(timeouts={"dns": 1.0, "udp_listen_after_first": 0.3})
        trace = Trace(network.clock)
        result = await dns_lookup_udp(network, trace, "blocked.example", addr)
    a_records = [q for q in trace.queries if q["query_type"] == "A"]
    assert [q["answers"][0]["ipv4"] for q in a_records] == [FORGED, REAL]
    assert all(q["engine"] == "udp" and q["resolver_address"] == addr for q in a_records)
    assert all(q["raw_response"] for q in a_records)
    assert a_records[0]["transaction_id"] == a_records[1]["transaction_id"]
    assert a_records[0]["t"] <= a_records[1]["t"]
    # The first reply is what a stub would use; the late true one is a duplicate.
    assert result.addrs == [FORGED]
    assert [d["answers"][0]["ipv4"] for d in result.duplicates] == [REAL]
    assert len(result.replies) == 3  # two A replies, one (empty) AAAA reply


async def test_nxdomain_and_timeout() -> None:
    async with dns_server(simple_plan({})) as (addr, _proto):
        network = make_network(timeouts={"dns": 1.0, "udp_listen_after_first": 0.0})
        result = await dns_lookup_udp(network, Trace(network.clock), "nope.example", addr)
    assert result.failure == failures.DNS_NXDOMAIN_ERROR and result.addrs == []

    async with dns_server(lambda q, t: []) as (addr, _proto):
        network = make_network(timeouts={"dns": 0.2, "udp_listen_after_first": 0.0})
        trace = Trace(network.clock)
        result = await dns_lookup_udp(network, trace, "silent.example", addr)
    assert result.failure == failures.GENERIC_TIMEOUT_ERROR
    assert {q["failure"] for q in trace.queries} == {failures.GENERIC_TIMEOUT_ERROR}


async def test_servfail_and_no_answer() -> None:
    def plan(qname: str, qtype: str) -> list[tuple[float, int, list[str]]]:
        if qname == "sf.example":
            return [(0.0, dns.rcode.SERVFAIL, [])]
        return [(0.0, dns.rcode.NOERROR, [])]

    async with dns_server(plan) as (addr, _proto):
        network = make_network(timeouts={"dns": 1.0, "udp_listen_after_first": 0.0})
        sf = await dns_lookup_udp(network, Trace(network.clock), "sf.example", addr)
        empty = await dns_lookup_udp(network, Trace(network.clock), "empty.example", addr)
    assert sf.failure == failures.DNS_SERVFAIL_ERROR
    assert empty.failure == failures.DNS_NO_ANSWER


async def test_lab_stub_resolver_asks_the_view_resolver() -> None:
    table = {"site.example": ["198.51.100.10", "2001:db8::10"]}
    async with dns_server(simple_plan(table)) as (addr, proto):
        network = make_network(lab(addr), "probe", timeouts={"dns": 1.0})
        assert await network.resolver.lookup("site.example", 1.0) == [
            "198.51.100.10",
            "2001:db8::10",
        ]
        with pytest.raises(NetxFailure) as info:
            await network.resolver.lookup("missing.example", 1.0)
    assert info.value.failure == failures.DNS_NXDOMAIN_ERROR
    assert ("site.example", "A") in proto.queries


async def test_lab_refuses_udp_to_resolvers_it_does_not_know(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_socket(*args: object, **kwargs: object) -> None:
        raise AssertionError("a socket was created for a refused destination")

    loop = asyncio.get_running_loop()
    network = make_network(lab("127.0.0.1:5300"), "probe")
    monkeypatch.setattr(loop, "create_datagram_endpoint", no_socket)
    _qid, wire = build_query("x.example", "A")
    for resolver in ("8.8.8.8:53", "10.10.34.35:53", "192.168.1.1:53", "127.0.0.1:53"):
        with pytest.raises(NetxFailure) as info:
            await udp_exchange(network, resolver, wire)
        assert info.value.failure == failures.LAB_DESTINATION_REFUSED


async def test_dns_over_tcp() -> None:
    from netx_kit import tcp_server

    from dideban.measure import dns_lookup_tcp

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = int.from_bytes(await reader.readexactly(2), "big")
        query = dns.message.from_wire(await reader.readexactly(size))
        reply = dns.message.make_response(query)
        q = query.question[0]
        if dns.rdatatype.to_text(q.rdtype) == "A":
            reply.answer.append(dns.rrset.from_text_list(q.name, 60, "IN", "A", [REAL]))
        wire = reply.to_wire()
        writer.write(len(wire).to_bytes(2, "big") + wire)
        await writer.drain()

    async with tcp_server(answer) as port:
        network = make_network(timeouts={"dns": 1.0})
        trace = Trace(network.clock)
        result = await dns_lookup_tcp(network, trace, "site.example", f"127.0.0.1:{port}")
    assert result.addrs == [REAL] and result.failure is None
    assert {q["engine"] for q in trace.queries} == {"tcp"}
    a = next(q for q in trace.queries if q["query_type"] == "A")
    assert a["answers"][0]["ipv4"] == REAL and a["raw_response"]


async def test_stub_resolver_retransmits_a_dropped_query() -> None:
    """The first datagram of each query is "lost"; the lab's system-resolver stub asks again
    after half its timeout, while a measurement's UDP lookup sends once."""
    counts: dict[tuple[str, str], int] = {}

    def drop_first(qname: str, qtype: str) -> list[tuple[float, int, list[str]]]:
        counts[(qname, qtype)] = counts.get((qname, qtype), 0) + 1
        if counts[(qname, qtype)] == 1:
            return []
        return [(0.0, dns.rcode.NOERROR, [REAL] if qtype == "A" else [])]

    async with dns_server(drop_first) as (addr, _proto):
        network = make_network(lab(addr), "probe", timeouts={"dns": 0.6})
        assert await network.resolver.lookup("lossy.example", 0.6) == [REAL]
        counts.clear()
        measured = await dns_lookup_udp(network, Trace(network.clock), "lossy.example", addr)
    assert measured.failure == failures.GENERIC_TIMEOUT_ERROR
    assert counts[("lossy.example", "A")] == 1


async def test_lab_refuses_dns_over_tcp_to_unknown_resolvers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dideban.netx import tcp_exchange

    dials: list[object] = []

    async def no_dial(*args: object, **kwargs: object) -> None:
        dials.append(args)
        raise AssertionError("dialled")

    monkeypatch.setattr(asyncio, "open_connection", no_dial)
    network = make_network(lab("127.0.0.1:5300"), "probe")
    _qid, wire = build_query("x.example", "A")
    with pytest.raises(NetxFailure) as info:
        await tcp_exchange(network, "8.8.8.8:53", wire)
    assert info.value.failure == failures.LAB_DESTINATION_REFUSED
    assert dials == []
