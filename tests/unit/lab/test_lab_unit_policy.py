"""The lab's decisions (pure): resolvers, censor actions, certificates, pages, DNS replies."""

from __future__ import annotations

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from dideban.lab.policy import (
    INJECT_TRUE_REPLY_DELAY,
    CensorAction,
    DnsDecision,
    LabPolicy,
    pick_profile,
    site_page,
)
from dideban.lab.scenario import ScenarioError, load_scenario
from dideban.lab.userspace import dns_replies

IRAN = load_scenario("iran")
MCI = LabPolicy(IRAN, pick_profile(IRAN, None))
TCI = LabPolicy(IRAN, pick_profile(IRAN, "TCI-like"))


def test_default_profile_is_the_probes_asn() -> None:
    profile = pick_profile(IRAN, None)
    assert profile is not None and profile.name == "MCI-like"
    with pytest.raises(ScenarioError, match="no ISP profile"):
        pick_profile(IRAN, "AS0")


def test_isp_and_honest_resolvers() -> None:
    ip = IRAN.site
    assert MCI.isp_dns("www.facebook.com.", "A") == DnsDecision("answer", "10.10.34.35")
    assert MCI.isp_dns("WWW.FACEBOOK.COM", "AAAA") == DnsDecision("empty")
    assert MCI.isp_dns("www.torproject.org", "A") == DnsDecision("nxdomain")
    assert MCI.isp_dns("psiphon.ca", "A") == DnsDecision("silent")
    assert MCI.isp_dns("psiphon.ca", "AAAA") == DnsDecision("silent")
    assert MCI.isp_dns("www.nurizad.info", "A") == DnsDecision(
        "inject", ip("www.nurizad.info").ip, "10.10.34.35"
    )
    assert MCI.isp_dns("webneveshteha.com", "A") == DnsDecision("nxdomain")
    assert MCI.isp_dns("unknown.example", "A") == DnsDecision("nxdomain")
    for name in ("www.facebook.com", "www.torproject.org", "psiphon.ca", "telegram.org"):
        assert MCI.honest_dns(name, "A") == DnsDecision("answer", ip(name).ip)
    assert MCI.honest_dns("webneveshteha.com", "A") == DnsDecision("nxdomain")
    assert MCI.forged_answers() == {"10.10.34.35"}


def test_censor_actions_and_profiles() -> None:
    assert MCI.censor_action("tls", "www.instagram.com") == CensorAction("reset")
    assert TCI.censor_action("tls", "www.instagram.com") == CensorAction("drop")
    assert MCI.censor_action("tls", "www.iranintl.com") == CensorAction("drop")
    assert MCI.censor_action("http", "www.radiofarda.com") == CensorAction("blockpage")
    assert MCI.censor_action("http", "iranefardanews.com") == CensorAction("reset")
    # Host rules never apply to TLS flows and SNI rules never to plain HTTP.
    assert MCI.censor_action("tls", "www.radiofarda.com") == CensorAction("pass")
    assert MCI.censor_action("http", "www.instagram.com") == CensorAction("pass")
    assert MCI.censor_action("tls", "") == CensorAction("pass")
    assert MCI.censor_action("tls", "fa.wikipedia.org") == CensorAction("pass", 0.3, 32000.0)


def test_certificates_and_pages() -> None:
    assert MCI.leaf_for("www.homa.org") == (["www.homa.org"], True)
    assert MCI.leaf_for("persianbasket.com") == (["not-persianbasket.com"], False)
    assert MCI.leaf_for("www.digikala.com") == (["www.digikala.com"], False)
    assert MCI.leaf_for("unknown.example") is None
    signal = site_page(IRAN.site("signal.org"))
    assert "<title>Signal &gt;&gt; Home</title>" in signal
    lengths = {len(site_page(s)) for s in IRAN.sites}
    assert min(lengths) > 1400 and len(lengths) > len(IRAN.sites) // 2
    echo = site_page(IRAN.site("www.whatismyip.com"), client_ip="203.0.113.7", peer="127.0.0.1:5")
    assert "203.0.113.7" in echo and "127.0.0.1:5" in echo
    assert "203.0.113.7" not in site_page(IRAN.site("www.digikala.com"), client_ip="203.0.113.7")


def _answers(wire: bytes) -> tuple[int, list[str]]:
    msg = dns.message.from_wire(wire)
    return msg.rcode(), [r.address for rr in msg.answer for r in rr if rr.rdtype == dns.rdatatype.A]


def test_dns_replies() -> None:
    q = dns.message.make_query("www.nurizad.info", "A")
    replies = dns_replies(MCI.isp_dns, q.to_wire())
    assert [d for d, _ in replies] == [0.0, INJECT_TRUE_REPLY_DELAY]
    assert [_answers(w) for _, w in replies] == [
        (dns.rcode.NOERROR, ["10.10.34.35"]),
        (dns.rcode.NOERROR, [IRAN.site("www.nurizad.info").ip]),
    ]
    assert all(dns.message.from_wire(w).id == q.id for _, w in replies)
    assert len(dns_replies(MCI.isp_dns, q.to_wire(), tcp=True)) == 1
    assert dns_replies(MCI.isp_dns, dns.message.make_query("psiphon.ca", "A").to_wire()) == []
    nx = dns_replies(MCI.isp_dns, dns.message.make_query("www.torproject.org", "A").to_wire())
    assert [_answers(w) for _, w in nx] == [(dns.rcode.NXDOMAIN, [])]
    assert dns_replies(MCI.isp_dns, b"\x00garbage") == []
    empty = dns.message.Message()
    formerr = dns_replies(MCI.isp_dns, empty.to_wire())
    assert dns.message.from_wire(formerr[0][1]).rcode() == dns.rcode.FORMERR
