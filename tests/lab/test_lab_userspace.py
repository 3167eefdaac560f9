"""The userspace lab seen from outside, with plain sockets, ssl and dnspython (not the probe).

One `iran` lab runs on its own thread for the module; every network wait has a timeout.
"""

from __future__ import annotations

import html
import re
import socket
import ssl
import time
from collections.abc import Iterator

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from dideban.lab import start_lab_in_thread
from dideban.lab.policy import INJECT_TRUE_REPLY_DELAY, site_title
from dideban.lab.scenario import Site, load_scenario
from dideban.lab.userspace import CONTROL_PUBLIC_IP
from dideban.model.labnet import LabNetwork, LabView, is_loopback

SCENARIO = load_scenario("iran")


@pytest.fixture(scope="module")
def lab() -> Iterator[LabNetwork]:
    network, stop = start_lab_in_thread(SCENARIO)
    try:
        yield network
    finally:
        stop()


def _endpoint(view: LabView, ip: str, port: int) -> tuple[str, int]:
    target = view.route(ip, port)
    assert target is not None, f"no route for {ip}:{port}"
    host, p = target.rsplit(":", 1)
    return host, int(p)


def _resolver(view: LabView) -> tuple[str, int]:
    host, port = view.resolver.rsplit(":", 1)
    return host, int(port)


def _query(
    view: LabView, name: str, rdtype: str = "A", timeout: float = 1.0
) -> dns.message.Message:
    host, port = _resolver(view)
    return dns.query.udp(dns.message.make_query(name, rdtype), host, port=port, timeout=timeout)


def _a(msg: dns.message.Message) -> list[str]:
    return [r.address for rrset in msg.answer for r in rrset if rrset.rdtype == dns.rdatatype.A]


def _ip(domain: str) -> str:
    return SCENARIO.site(domain).ip


def _http(view: LabView, domain: str, ip: str | None = None, timeout: float = 3.0) -> bytes:
    with socket.create_connection(_endpoint(view, ip or _ip(domain), 80), timeout=timeout) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: {domain}\r\nConnection: close\r\n\r\n".encode())
        return _read_all(s)


def _read_all(s: socket.socket | ssl.SSLSocket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def _https(
    network: LabNetwork, view: LabView, domain: str, timeout: float = 3.0, verify: bool = True
) -> bytes:
    ctx = ssl.create_default_context(cadata=network.ca_pem)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(_endpoint(view, _ip(domain), 443), timeout=timeout)
    with ctx.wrap_socket(raw, server_hostname=domain) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: {domain}\r\nConnection: close\r\n\r\n".encode())
        return _read_all(s)


def _title(response: bytes) -> str:
    m = re.search(rb"<title>(.*?)</title>", response, re.S)
    assert m is not None, response[:300]
    return html.unescape(m.group(1).decode())


# --- DNS -----------------------------------------------------------------------------------


def test_isp_resolver_hijacks_to_the_blockpage_address(lab: LabNetwork) -> None:
    for domain in ("www.facebook.com", "twitter.com", "www.youtube.com"):
        assert _a(_query(lab.probe_view, domain)) == ["10.10.34.35"]


def test_isp_resolver_says_nxdomain_and_honest_resolver_tells_the_truth(lab: LabNetwork) -> None:
    assert _query(lab.probe_view, "www.torproject.org").rcode() == dns.rcode.NXDOMAIN
    for domain in ("www.torproject.org", "www.facebook.com", "psiphon.ca", "www.nurizad.info"):
        msg = _query(lab.control_view, domain)
        assert msg.rcode() == dns.rcode.NOERROR and _a(msg) == [_ip(domain)]


def test_isp_resolver_stays_silent_for_dns_timeout(lab: LabNetwork) -> None:
    with pytest.raises(dns.exception.Timeout):
        _query(lab.probe_view, "psiphon.ca", timeout=0.5)
    # Over TCP too: the connection is accepted, no answer comes.
    host, port = _resolver(lab.probe_view)
    with pytest.raises(dns.exception.Timeout):
        dns.query.tcp(dns.message.make_query("psiphon.ca", "A"), host, port=port, timeout=0.5)


def test_isp_resolver_injection_sends_two_replies_forged_first(lab: LabNetwork) -> None:
    host, port = _resolver(lab.probe_view)
    query = dns.message.make_query("www.nurizad.info", "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        s.sendto(query.to_wire(), (host, port))
        t0 = time.monotonic()
        first = dns.message.from_wire(s.recv(4096))
        t1 = time.monotonic()
        second = dns.message.from_wire(s.recv(4096))
        t2 = time.monotonic()
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            s.recv(4096)  # exactly two
    assert first.id == second.id == query.id
    assert _a(first) == ["10.10.34.35"]
    assert _a(second) == [_ip("www.nurizad.info")]
    # The true reply leaves the resolver only after the injection delay.
    assert t2 - t0 >= INJECT_TRUE_REPLY_DELAY * 0.9 and t2 >= t1


def test_resolvers_answer_aaaa_empty_unknown_nxdomain_down_sites_nxdomain(lab: LabNetwork) -> None:
    for view in (lab.probe_view, lab.control_view):
        aaaa = _query(view, "www.digikala.com", "AAAA")
        assert aaaa.rcode() == dns.rcode.NOERROR and aaaa.answer == []
        assert _query(view, "no-such-site.example").rcode() == dns.rcode.NXDOMAIN
        assert _query(view, "webneveshteha.com").rcode() == dns.rcode.NXDOMAIN
        assert _a(_query(view, "www.digikala.com")) == [_ip("www.digikala.com")]


def test_resolvers_speak_tcp(lab: LabNetwork) -> None:
    host, port = _resolver(lab.probe_view)
    msg = dns.query.tcp(dns.message.make_query("twitter.com", "A"), host, port=port, timeout=1)
    assert _a(msg) == ["10.10.34.35"]
    # An injection over TCP: only the forgery (one stream, first answer wins).
    msg = dns.query.tcp(dns.message.make_query("www.nurizad.info", "A"), host, port=port, timeout=1)
    assert _a(msg) == ["10.10.34.35"]


# --- the censor ------------------------------------------------------------------------------


def test_censor_resets_on_sni(lab: LabNetwork) -> None:
    for domain in ("www.instagram.com", "www.whatsapp.com"):
        with pytest.raises(ConnectionResetError):
            _https(lab, lab.probe_view, domain, timeout=2)


def test_censor_stalls_on_sni(lab: LabNetwork) -> None:
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        _https(lab, lab.probe_view, "www.iranintl.com", timeout=0.8)
    assert time.monotonic() - t0 >= 0.7


def test_stalled_handshake_does_not_stall_others(lab: LabNetwork) -> None:
    # A flow stalled by the censor and a site-server connection that never sends a
    # ClientHello, both held open while a normal fetch must still complete.
    ctx = ssl.create_default_context(cadata=lab.ca_pem)
    raw = socket.create_connection(_endpoint(lab.probe_view, _ip("www.iranintl.com"), 443), 2)
    stalled = ctx.wrap_socket(
        raw, server_hostname="www.iranintl.com", do_handshake_on_connect=False
    )
    silent = socket.create_connection(_endpoint(lab.control_view, _ip("www.irna.ir"), 443), 2)
    try:
        stalled.settimeout(0.2)
        with pytest.raises(TimeoutError):
            stalled.do_handshake()  # the ClientHello went out; no answer comes
        # Would time out if the listener waited on the stalled handshakes.
        page = _https(lab, lab.probe_view, "www.digikala.com", timeout=2)
        assert b"200 OK" in page
        page = _https(lab, lab.control_view, "www.irna.ir", timeout=2)
        assert b"200 OK" in page
    finally:
        stalled.close()
        silent.close()


def test_censor_serves_the_iranian_blockpage_on_host(lab: LabNetwork) -> None:
    for domain in ("www.radiofarda.com", "www.roozonline.com", "www.chekhabar.com"):
        page = _http(lab.probe_view, domain)
        assert page.startswith(b"HTTP/1.1 403 Forbidden\r\n")
        assert b'<iframe src="http://10.10.34.34/?type=Invalid Site&policy=MainPolicy ' in page
        assert b"peyvandha.ir" in page
        assert SCENARIO.blockpage_html.encode() in page
        honest = _http(lab.control_view, domain)
        assert honest.startswith(b"HTTP/1.1 200 OK") and _title(honest) == site_title(
            SCENARIO.site(domain)
        )


def test_censor_resets_on_host(lab: LabNetwork) -> None:
    with pytest.raises(ConnectionResetError):
        _http(lab.probe_view, "iranefardanews.com", timeout=2)
    assert b"200 OK" in _http(lab.control_view, "iranefardanews.com")


def test_hijacked_answer_leads_to_the_blockpage_server(lab: LabNetwork) -> None:
    page = _http(lab.probe_view, "www.facebook.com", ip="10.10.34.35")
    assert page.startswith(b"HTTP/1.1 403") and b"10.10.34.34" in page
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(_endpoint(lab.probe_view, "10.10.34.35", 443), 2).close()
    assert lab.control_view.route("10.10.34.35", 80) is None


def test_tcp_reset_route_refuses(lab: LabNetwork) -> None:
    for port in (80, 443):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(_endpoint(lab.probe_view, _ip("telegram.org"), port), 2)


def test_tcp_timeout_route_times_out(lab: LabNetwork) -> None:
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        socket.create_connection(_endpoint(lab.probe_view, _ip("signal.org"), 443), 0.6)
    assert time.monotonic() - t0 >= 0.5


def test_throttle_adds_measurable_delay_but_serves(lab: LabNetwork) -> None:
    domain = "fa.wikipedia.org"
    delay_ms = next(c.params["delay_ms"] for c in SCENARIO.site(domain).censor)

    def timed(view: LabView) -> tuple[float, bytes]:
        t0 = time.monotonic()
        page = _https(lab, view, domain, timeout=5)
        return time.monotonic() - t0, page

    slow, page = timed(lab.probe_view)
    fast, honest = timed(lab.control_view)
    assert b"200 OK" in page and _title(page) == _title(honest)
    # The delay applies to the first bytes in each direction.
    assert slow >= 2 * delay_ms / 1000 * 0.95 and fast < slow, (slow, fast)


def test_control_view_bypasses_the_censor(lab: LabNetwork) -> None:
    for domain in ("www.instagram.com", "www.iranintl.com", "telegram.org", "signal.org"):
        page = _https(lab, lab.control_view, domain, timeout=2)
        assert page.startswith(b"HTTP/1.1 200 OK") and _title(page) == site_title(
            SCENARIO.site(domain)
        )


def test_refused_site_refuses_in_both_views(lab: LabNetwork) -> None:
    for view in (lab.probe_view, lab.control_view):
        with pytest.raises(ConnectionRefusedError):
            _http(view, "www.arvand.net", timeout=2)


def test_site_pages_have_distinct_titles_and_lengths(lab: LabNetwork) -> None:
    titles: dict[str, str] = {}
    lengths: set[int] = set()
    served: list[Site] = [s for s in SCENARIO.sites if s.server == "ok"]
    for site in served:
        page = (
            _https(lab, lab.control_view, site.domain)
            if site.scheme == "https"
            else _http(lab.control_view, site.domain)
        )
        titles[site.domain] = _title(page)
        lengths.add(len(page.split(b"\r\n\r\n", 1)[1]))
        assert len(page) > 1500
    assert len(set(titles.values())) == len(served)
    assert titles["www.digikala.com"] == "Digikala"
    assert len(lengths) > len(served) // 2


def test_echo_site_shows_the_public_address_each_side_would_have(lab: LabNetwork) -> None:
    probe = _https(lab, lab.probe_view, "www.whatismyip.com")
    control = _https(lab, lab.control_view, "www.whatismyip.com")
    assert f"X-Client-IP: {lab.probe_public_ip}".encode() in probe
    assert lab.probe_public_ip.encode() in probe.split(b"\r\n\r\n", 1)[1]
    assert b"X-Peer-Address: 127.0.0.1:" in probe
    assert lab.probe_public_ip.encode() not in control
    assert CONTROL_PUBLIC_IP.encode() in control


# --- routes and certificates -------------------------------------------------------------


def test_every_route_target_is_loopback_and_no_key_is(lab: LabNetwork) -> None:
    for view in (lab.probe_view, lab.control_view):
        assert view.routes and not view.direct
        for key, target in view.routes.items():
            host, _, port = target.rpartition(":")
            assert host == "127.0.0.1" and 0 < int(port) < 65536
            assert not is_loopback(key.rpartition(":")[0])
    site_ips = {s.ip for s in SCENARIO.sites}
    keys = {k.rpartition(":")[0] for k in lab.probe_view.routes}
    assert keys == site_ips | {"10.10.34.35"}
    assert {k.rpartition(":")[0] for k in lab.control_view.routes} == site_ips
    assert lab.probe_view.route("8.8.8.8", 53) is None
    assert lab.timeouts["dns"] > 0 and lab.timeouts["udp_listen_after_first"] > 0
    assert (lab.probe_cc, lab.probe_asn) == ("IR", "AS197207")


def test_lab_ca_verifies_site_certificates(lab: LabNetwork) -> None:
    assert b"200 OK" in _https(lab, lab.control_view, "www.digikala.com")
    # Without the lab CA the same site does not verify.
    raw = socket.create_connection(_endpoint(lab.control_view, _ip("www.digikala.com"), 443), 2)
    with (
        pytest.raises(ssl.SSLCertVerificationError) as info,
        ssl.create_default_context().wrap_socket(raw, server_hostname="www.digikala.com"),
    ):
        pass
    assert info.value.verify_code == 20  # unable to get local issuer certificate


def test_expired_and_wrong_name_certificates_fail_verification(lab: LabNetwork) -> None:
    for view in (lab.probe_view, lab.control_view):
        with pytest.raises(ssl.SSLCertVerificationError) as expired:
            _https(lab, view, "www.homa.org")
        assert expired.value.verify_code == 10  # certificate has expired
        with pytest.raises(ssl.SSLCertVerificationError) as wrong:
            _https(lab, view, "persianbasket.com")
        assert wrong.value.verify_code == 62  # hostname mismatch
        # The server is otherwise fine: without verification it serves its page.
        assert b"200 OK" in _https(lab, view, "www.homa.org", verify=False)
