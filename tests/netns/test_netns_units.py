"""Pure parts of the netns lab (no root): packet codecs, censor decisions, plan and rule text."""

from __future__ import annotations

import ssl
import struct

import dns.message
import dns.rdatatype
import pytest
from hypothesis import given
from hypothesis import strategies as st
from netns_helpers import HERE

from dideban.lab.netns import packets, topology
from dideban.lab.netns.censor import Censor
from dideban.lab.netns.plan import CensorPlan, PlanError, make_plan
from dideban.lab.scenario import load_scenario, parse_scenario

CLIENT, SERVER = "203.0.113.77", "198.18.0.10"


def client_hello(server_name: str) -> bytes:
    """A real ClientHello, as Python's TLS stack writes it."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def seg(payload: bytes = b"", *, sport: int = 40000, dport: int = 443, flags: int = packets.TCP_ACK | packets.TCP_PSH, seq: int = 1000, ack: int = 5000, dst: str = SERVER) -> bytes:  # fmt: skip
    return packets.build_tcp(
        CLIENT, dst, sport, dport, seq=seq, ack=ack, flags=flags, payload=payload
    )


def syn(sport: int, dport: int = 443, dst: str = SERVER) -> bytes:
    return seg(sport=sport, dport=dport, flags=packets.TCP_SYN, ack=0, dst=dst)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _ones_complement_ok(data: bytes) -> bool:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def test_built_tcp_packet_parses_back_with_valid_checksums() -> None:
    raw = seg(b"hello", seq=0xFFFFFFF0, ack=7)
    pkt = packets.parse_ipv4(raw)
    assert pkt is not None
    assert (pkt.src, pkt.dst, pkt.sport, pkt.dport, pkt.payload) == (
        CLIENT,
        SERVER,
        40000,
        443,
        b"hello",
    )
    assert (pkt.seq, pkt.ack) == (0xFFFFFFF0, 7)
    assert _ones_complement_ok(raw[:20])
    pseudo = raw[12:20] + struct.pack("!BBH", 0, 6, len(raw) - 20)
    assert _ones_complement_ok(pseudo + raw[20:])


def test_resets_hit_both_ends_with_the_right_numbers() -> None:
    pkt = packets.parse_ipv4(seg(b"x" * 10, seq=1000, ack=5000))
    assert pkt is not None
    to_server, to_client = (packets.parse_ipv4(p) for p in packets.resets_for(pkt))
    assert to_server is not None and to_client is not None
    assert (to_server.dst, to_server.seq, to_server.flags) == (SERVER, 1000, packets.TCP_RST)
    assert (to_client.src, to_client.dst, to_client.dport) == (SERVER, CLIENT, 40000)
    assert (to_client.seq, to_client.ack) == (5000, 1010)
    assert to_client.flags & packets.TCP_RST


def test_sni_and_host_extraction() -> None:
    assert packets.tls_sni(client_hello("Sni-Reset.Example")) == "sni-reset.example"
    assert packets.tls_sni(b"GET / HTTP/1.1\r\n") is None
    assert packets.tls_sni(client_hello("a.example")[:30]) is None  # truncated: no crash
    req = b"GET / HTTP/1.1\r\nUser-Agent: x\r\nHOST: Blockpage.Example:80\r\n\r\n"
    assert packets.http_host(req) == "blockpage.example"
    assert packets.http_host(b"\x16\x03\x01") is None


def test_protocol_fingerprints() -> None:
    assert packets.looks_like_protocol(client_hello("x.example"))
    assert packets.looks_like_protocol(b"GET / HTTP/1.1\r\n")
    query = dns.message.make_query("x.example", dns.rdatatype.A).to_wire()
    assert packets.looks_like_protocol(len(query).to_bytes(2, "big") + query)
    assert not packets.looks_like_protocol(b"SSH-2.0-OpenSSH_9.2\r\n")
    assert not packets.looks_like_protocol(b"\x00" * 40)


@given(st.binary(max_size=300))
def test_parsers_never_raise(data: bytes) -> None:
    packets.parse_ipv4(data)
    packets.tls_sni(data)
    packets.http_host(data)
    packets.looks_like_protocol(data)


def test_censor_sni_reset_drop_and_passing() -> None:
    censor = Censor(CensorPlan(sni_reset=["blocked.example"], sni_drop=["dropped.example"]))
    d = censor.decide(seg(client_hello("blocked.example"), sport=1))
    assert not d.accept and d.reason == "sni_reset" and len(d.inject) == 2
    # Names match exactly, as scenarios list them.
    assert censor.decide(seg(client_hello("www.blocked.example"), sport=11)).accept
    d = censor.decide(seg(client_hello("dropped.example"), sport=2))
    assert not d.accept and d.inject == []
    # Retransmissions and the rest of a censored flow are dropped too.
    assert not censor.decide(seg(client_hello("dropped.example"), sport=2)).accept
    assert censor.decide(seg(client_hello("notblocked.example"), sport=3)).accept
    assert censor.decide(seg(client_hello("example"), sport=4)).accept


def test_censor_http_blockpage_and_reset() -> None:
    plan = CensorPlan(
        host_blockpage=["news.example"],
        host_reset=["reset.example"],
        blockpage_html="<p>blocked</p>",
    )
    censor = Censor(plan)
    req = b"GET / HTTP/1.1\r\nHost: news.example\r\n\r\n"
    d = censor.decide(seg(req, dport=80, seq=10, ack=20))
    assert not d.accept and d.reason == "http_blockpage"
    to_client = next(p for p in map(packets.parse_ipv4, d.inject) if p and p.dst == CLIENT)
    assert (
        to_client.payload.startswith(b"HTTP/1.1 403 Forbidden")
        and b"<p>blocked</p>" in to_client.payload
    )
    assert to_client.flags & packets.TCP_FIN and (to_client.seq, to_client.ack) == (
        20,
        10 + len(req),
    )
    d = censor.decide(seg(b"GET / HTTP/1.1\r\nHost: reset.example\r\n\r\n", dport=80, sport=9))
    assert not d.accept and d.reason == "http_reset"


def test_censor_forges_dns_answers_and_lets_the_query_through() -> None:
    censor = Censor(CensorPlan(dns_inject={"injected.example": "10.10.34.36"}))
    query = dns.message.make_query("injected.example", dns.rdatatype.A)
    d = censor.decide(packets.build_udp(CLIENT, "198.18.254.53", 5353, 53, query.to_wire()))
    assert d.accept and len(d.inject) == 1
    forged = packets.parse_ipv4(d.inject[0])
    assert forged is not None and (forged.src, forged.sport, forged.dport) == (
        "198.18.254.53",
        53,
        5353,
    )
    reply = dns.message.from_wire(forged.payload)
    assert reply.id == query.id and reply.answer[0][0].to_text() == "10.10.34.36"
    other = dns.message.make_query("ok.example", dns.rdatatype.A).to_wire()
    assert censor.decide(packets.build_udp(CLIENT, "198.18.254.53", 5353, 53, other)).inject == []


def test_protocol_filter_window_and_timer_reset() -> None:
    clock = Clock()
    censor = Censor(CensorPlan(protocol_filter_window=60.0), clock)
    garbage = b"\x00not-a-protocol\xff" * 3
    censor.decide(syn(1))
    first = censor.decide(seg(garbage, sport=1))
    assert first.accept and first.reason == "protocol_filter"  # the first packet passes
    assert not censor.decide(seg(b"more", sport=1, seq=1048)).accept
    # A proper TLS flow to the same destination: handshake passes, data is dropped.
    assert censor.decide(syn(2)).accept
    assert not censor.decide(seg(client_hello("ok.example"), sport=2)).accept
    # Other destination, other port: unaffected.
    assert censor.decide(seg(client_hello("ok.example"), sport=3, dst="198.18.0.11")).accept
    assert censor.decide(seg(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", sport=4, dport=80)).accept
    # 50 s later a new offending flow restarts the 60 s timer.
    clock.now += 50
    censor.decide(seg(garbage, sport=5))
    clock.now += 20  # 70 s after the first offence, 20 s after the second
    assert not censor.decide(seg(client_hello("ok.example"), sport=6)).accept
    clock.now += 41
    assert censor.decide(seg(client_hello("ok.example"), sport=7)).accept


def test_protocol_filter_judges_two_packets_together() -> None:
    censor = Censor(CensorPlan(protocol_filter_window=60.0))
    assert censor.decide(seg(b"GE", sport=1)).accept  # too short to judge
    assert censor.decide(seg(b"T / HTTP/1.1\r\n\r\n", sport=1, seq=1002)).accept
    assert censor.decide(seg(b"\x00\x00", sport=2)).accept
    assert not censor.decide(seg(b"\x00\x00\x00", sport=2, seq=1002)).accept
    off = Censor(CensorPlan(protocol_filter_window=0))
    assert off.decide(seg(b"\x00" * 40, sport=3)).accept


def test_reset_after_delay() -> None:
    clock = Clock()
    censor = Censor(CensorPlan(reset_after=5.0, protocol_filter_window=0), clock)
    censor.decide(syn(1))
    assert censor.decide(seg(b"GET / HTTP/1.1\r\n\r\n", sport=1, dport=80)).accept
    clock.now += 6
    d = censor.decide(seg(b"GET / HTTP/1.1\r\n\r\n", sport=1, dport=80, seq=1018))
    assert not d.accept and d.reason == "reset_after" and len(d.inject) == 2


def test_plan_from_the_test_scenario_and_profiles() -> None:
    sc = load_scenario(str(HERE / "lab.yaml"))
    plan = make_plan(sc)
    assert plan.censor.sni_reset == ["sni-reset.example"] and plan.censor.sni_drop == [
        "sni-drop.example"
    ]
    assert plan.isp_dns["hijacked.example"] == ["hijack", "10.10.34.35"]
    assert plan.censor.dns_inject == {"injected.example": "10.10.34.36"}
    assert plan.tcp_reset_ips == ["198.18.0.30"] and plan.tcp_timeout_ips == ["198.18.0.31"]
    assert plan.throttled() == {"198.18.0.60": 800}
    tci = make_plan(sc, profile="TCI-like")
    assert tci.censor.sni_reset == [] and sorted(tci.censor.sni_drop) == [
        "sni-drop.example",
        "sni-reset.example",
    ]
    assert tci.probe_asn == "AS58224"
    mci = make_plan(sc, profile="mci-like")
    assert sorted(mci.censor.sni_reset) == ["sni-drop.example", "sni-reset.example"]
    with pytest.raises(PlanError, match="no ISP profile"):
        make_plan(sc, profile="Irancell-like")


def _scenario(site_ip: str, probe_ip: str = "203.0.113.77") -> dict[str, object]:
    return {
        "probe": {"cc": "IR", "asn": "AS1", "network_name": "n", "public_ip": probe_ip},
        "sites": [{"url": "https://a.example", "ip": site_ip}],
    }


@pytest.mark.parametrize(
    ("site_ip", "probe_ip", "message"),
    [
        ("198.18.254.53", "203.0.113.77", "reserved"),
        ("198.51.100.80", "203.0.113.77", "reserved"),
        ("203.0.113.77", "203.0.113.77", "also a site"),
    ],
)
def test_plan_rejects_what_the_topology_cannot_build(
    site_ip: str, probe_ip: str, message: str
) -> None:
    with pytest.raises(PlanError, match=message):
        make_plan(parse_scenario(_scenario(site_ip, probe_ip)))


def test_rule_text() -> None:
    plan = make_plan(load_scenario(str(HERE / "lab.yaml")))
    batches = dict(topology.link_batch(plan))
    assert "default" not in batches["dideban-probe"]
    assert "route add 198.18.0.0/15 via 198.18.255.1 dev eth0" in batches["dideban-probe"]
    assert "route add blackhole 198.18.0.31/32" in batches["dideban-censor"]
    rules = topology.censor_rules(plan)
    assert "-j NFQUEUE --queue-num 7 --queue-bypass" in rules
    assert "-A FORWARD -i p0 -p udp --dport 443 -j DROP" in rules
    assert "-d 198.18.0.30/32 -p tcp -j REJECT --reject-with tcp-reset" in rules
    assert "match ip src 198.18.0.60/32" in topology.tc_batch(plan)
    assert "198.18.0.71/32" in topology.inet_rules(plan)  # refused everywhere
    plan.shutdown, plan.curfew_start, plan.curfew_stop = "curfew", "22:00", "06:00"
    assert "--timestart 22:00 --timestop 06:00" in topology.censor_rules(plan)
