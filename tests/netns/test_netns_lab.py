"""The netns lab end to end with plain sockets from inside the probe namespace.

One lab for the module (tests/netns/lab.yaml: one site per censor technique plus negative
controls), protocol filter window 2 s. Each test observes a censor behaviour the way a probe
would: from the probe namespace, through the censor router, to the lab's Internet.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from netns_helpers import HERE, InNamespace, ns_exec, requires_netns
from netns_probe_sockets import (
    dns_replies,
    http_get,
    idle_then_request,
    send_garbage,
    tcp_connect,
    timed_get,
    tls_handshake,
    udp_echo,
)

from dideban.lab import find_running_lab, netns
from dideban.lab.netns import plan as P
from dideban.lab.netns import topology
from dideban.lab.scenario import Scenario, load_scenario
from dideban.model.labnet import LabNetwork

pytestmark = [pytest.mark.netns, requires_netns]

ISP = P.ISP_RESOLVER


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(str(HERE / "lab.yaml"))


@pytest.fixture(scope="module")
def lab(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNetwork]:
    # The lab announces itself in the state dir `find_running_lab` reads: keep it private.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIDEBAN_STATE_DIR", str(tmp_path_factory.mktemp("state")))
        network = netns.up(scenario, protocol_filter_window=2.0, test_helper=False, collector=False)
        yield network
        netns.down()


@pytest.fixture(scope="module")
def probe(lab: LabNetwork) -> Iterator[InNamespace]:
    ns = InNamespace(P.NS_PROBE)
    yield ns
    ns.close()


def ip_of(scenario: Scenario, domain: str) -> str:
    return scenario.site(domain).ip


def test_lab_network_describes_the_netns_lab(lab: LabNetwork) -> None:
    assert lab.probe_view.direct and lab.probe_view.routes == {}
    assert lab.control_view.direct and lab.control_view.routes == {}
    assert lab.probe_view.resolver == f"{P.ISP_RESOLVER}:53"
    assert lab.control_view.resolver == f"{P.HONEST_RESOLVER}:53"
    assert lab.probe_cc == "IR" and lab.probe_asn == "AS197207"
    assert "BEGIN CERTIFICATE" in lab.ca_pem
    saved = LabNetwork.from_json((netns.state_dir() / "lab.json").read_text(encoding="utf-8"))
    assert saved.pid == lab.pid and saved.probe_view == lab.probe_view


def test_lab_is_announced_for_the_probe_and_guarded_on_the_host(lab: LabNetwork) -> None:
    # From the host namespace the netns lab is NOT offered (its addresses would follow the
    # host's default route); from inside the probe namespace it is.
    assert find_running_lab(lab.name) is None
    inside = subprocess.run(
        ["ip", "netns", "exec", netns.NS_PROBE, sys.executable, "-c",
         "import sys; from dideban.lab import find_running_lab; "
         "f = find_running_lab(sys.argv[1]); print(f.pid if f and f.probe_view.direct else 0)",
         lab.name],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert int(inside.stdout.strip()) == lab.pid, inside.stderr
    guard = topology.run(["iptables", "-S", topology.HOST_LEAK_CHAIN])
    for r in topology.RANGES:
        assert f"-A {topology.HOST_LEAK_CHAIN} -d {r} ! -o lo -j REJECT" in guard
    hooks = topology.run(["iptables", "-S", "OUTPUT"])
    assert f"-A OUTPUT -j {topology.HOST_LEAK_CHAIN}" in hooks


def test_dns_censorship_at_the_isp_resolver(probe: InNamespace, scenario: Scenario) -> None:
    ok = probe.call(dns_replies, ISP, "ok.example")
    assert [(r[1], r[2]) for r in ok] == [("NOERROR", [ip_of(scenario, "ok.example")])]
    hijack = probe.call(dns_replies, ISP, "hijacked.example")
    assert [(r[1], r[2]) for r in hijack] == [("NOERROR", ["10.10.34.35"])]
    nx = probe.call(dns_replies, ISP, "nx.example")
    assert [r[1] for r in nx] == ["NXDOMAIN"]
    assert probe.call(dns_replies, ISP, "silent.example") == []
    # Site down everywhere: NXDOMAIN at the honest resolver too.
    assert [r[1] for r in probe.call(dns_replies, P.HONEST_RESOLVER, "gone.example")] == [
        "NXDOMAIN"
    ]
    assert [r[2] for r in probe.call(dns_replies, P.HONEST_RESOLVER, "hijacked.example")] == [
        [ip_of(scenario, "hijacked.example")]
    ]


def test_on_path_dns_injection_beats_the_true_answer(
    probe: InNamespace, scenario: Scenario
) -> None:
    replies = probe.call(dns_replies, ISP, "injected.example")
    assert [r[2] for r in replies] == [["10.10.34.36"], [ip_of(scenario, "injected.example")]]
    assert replies[1][0] - replies[0][0] >= 0.02  # the true answer came later, on its own


def test_probe_os_resolver_is_the_isp_resolver() -> None:
    out = ns_exec(P.NS_PROBE, "getent", "ahostsv4", "ok.example")
    assert out.returncode == 0 and out.stdout.split()[0] == "198.18.0.10"
    out = ns_exec(P.NS_PROBE, "getent", "ahostsv4", "hijacked.example")
    assert out.stdout.split()[0] == "10.10.34.35"
    assert ns_exec(P.NS_PROBE, "getent", "ahostsv4", "nx.example").returncode == 2


def test_ip_layer_blocking(probe: InNamespace, scenario: Scenario) -> None:
    assert probe.call(tcp_connect, ip_of(scenario, "ok.example"), 443) == "ok"
    assert probe.call(tcp_connect, ip_of(scenario, "reset-ip.example"), 443) == "connection_refused"
    assert probe.call(tcp_connect, ip_of(scenario, "nullrouted.example"), 443, 1.0) == (
        "generic_timeout_error"
    )
    # A site down everywhere refuses the connection itself (not censorship).
    assert probe.call(tcp_connect, ip_of(scenario, "refused.example"), 443) == "connection_refused"


def test_tls_sni_blocking_and_server_side_errors(
    lab: LabNetwork, probe: InNamespace, scenario: Scenario
) -> None:
    def tls(domain: str, sni: str | None = None) -> str:
        return probe.call(tls_handshake, ip_of(scenario, domain), sni or domain, lab.ca_pem, 1.5)

    assert tls("ok.example") == "ok"
    assert tls("sni-reset.example") == "connection_reset"
    assert tls("sni-drop.example") == "generic_timeout_error"
    # The censor matches the SNI, not the address: a blocked name to a working site's IP.
    assert tls("ok.example", "sni-reset.example") == "connection_reset"
    assert tls("expired.example").startswith("ssl:certificate has expired")
    assert "Hostname mismatch" in tls("wrongname.example")


def test_http_host_blocking(probe: InNamespace, scenario: Scenario) -> None:
    ok = probe.call(http_get, ip_of(scenario, "ok.example"), "ok.example")
    assert not isinstance(ok, str) and ok[0] == 200 and b"<title>Working site</title>" in ok[1]
    page = probe.call(http_get, ip_of(scenario, "blockpage.example"), "blockpage.example")
    assert not isinstance(page, str), page
    assert page[0] == 403 and b"http://10.10.34.34" in page[1]
    # Host match on any address (on-path DPI), and an RST for the reset technique.
    page2 = probe.call(http_get, ip_of(scenario, "ok.example"), "blockpage.example")
    assert not isinstance(page2, str) and page2[0] == 403
    reset = probe.call(http_get, ip_of(scenario, "host-reset.example"), "host-reset.example")
    assert reset == "connection_reset"


def test_isp_profiles_reset_versus_drop(
    lab: LabNetwork, probe: InNamespace, scenario: Scenario
) -> None:
    def tls(domain: str) -> str:
        return probe.call(tls_handshake, ip_of(scenario, domain), domain, lab.ca_pem, 1.5)

    try:
        netns.configure(profile="TCI-like", scenario=scenario)
        assert tls("sni-reset.example") == "generic_timeout_error"
        assert tls("sni-drop.example") == "generic_timeout_error"
        saved = json.loads((netns.state_dir() / "lab.json").read_text(encoding="utf-8"))
        assert saved["probe_asn"] == "AS58224"
        netns.configure(profile="MCI-like", scenario=scenario)
        assert tls("sni-reset.example") == "connection_reset"
        assert tls("sni-drop.example") == "connection_reset"
        assert tls("ok.example") == "ok"
    finally:
        netns.configure(profile="", scenario=scenario)
    assert tls("sni-drop.example") == "generic_timeout_error"


def test_quic_is_dropped_other_udp_passes(scenario: Scenario, probe: InNamespace) -> None:
    inet = InNamespace(P.NS_INET)
    ip = ip_of(scenario, "ok.example")

    def serve(port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((ip, port))
        sock.settimeout(5)

        def loop() -> None:
            try:
                while True:
                    data, addr = sock.recvfrom(2048)
                    sock.sendto(data, addr)
            except OSError:
                pass

        threading.Thread(target=loop, daemon=True).start()
        return sock

    servers = [inet.call(serve, 443), inet.call(serve, 4443)]
    try:
        assert probe.call(udp_echo, ip, 4443) is True
        assert probe.call(udp_echo, ip, 443) is False
    finally:
        for s in servers:
            s.close()
        inet.close()
    rules = topology.run(topology.in_ns(P.NS_CENSOR, "iptables", "-L", "FORWARD", "-v", "-x", "-n"))
    quic = [line for line in rules.splitlines() if "udp dpt:443" in line and "DROP" in line]
    assert quic and int(quic[0].split()[0]) >= 1


def test_throttled_site_is_slow_but_reachable(probe: InNamespace, scenario: Scenario) -> None:
    size = 120_000  # 0.96 Mbit at the site's 800 kbit/s cap: about 1.2 s
    slow_t, slow_n = probe.call(
        timed_get, ip_of(scenario, "slow.example"), "slow.example", f"/bytes/{size}"
    )
    fast_t, fast_n = probe.call(
        timed_get, ip_of(scenario, "ok.example"), "ok.example", f"/bytes/{size}"
    )
    assert slow_n == fast_n == size
    # 0.96 Mbit through an 800 kbit/s cap cannot take less than ~1.2 s (less htb's burst).
    assert slow_t >= 0.8 and fast_t < slow_t
    stats = topology.run(topology.in_ns(P.NS_CENSOR, "tc", "-s", "class", "show", "dev", "p0"))
    m = re.search(r"class htb 1:10 .*?Sent (\d+) bytes", stats, re.DOTALL)
    assert m is not None and int(m.group(1)) >= size


def test_protocol_filter_blocks_destination_for_the_window(
    lab: LabNetwork, probe: InNamespace, scenario: Scenario
) -> None:
    ok, ok2 = ip_of(scenario, "ok.example"), ip_of(scenario, "ok2.example")

    def tls(ip: str, name: str, timeout: float = 0.8) -> str:
        return probe.call(tls_handshake, ip, name, lab.ca_pem, timeout)

    def passes(ip: str, name: str) -> bool:
        # A generous timeout: a loaded machine must not turn a pass into a block.
        return tls(ip, name, 3.0) == "ok"

    assert passes(ok, "ok.example")
    assert probe.call(send_garbage, ok, 443, b"\x00\x01 not a protocol at all \xff" * 4) == "sent"
    blocked_at = time.monotonic()  # the block started before this
    assert tls(ok, "ok.example") == "generic_timeout_error"  # destination blocked
    assert passes(ok2, "ok2.example")  # other destinations pass
    ok_http = probe.call(http_get, ok, "ok.example")  # so does another port of the same host
    assert not isinstance(ok_http, str) and ok_http[0] == 200
    time.sleep(max(0.0, blocked_at + 2.3 - time.monotonic()))
    assert passes(ok, "ok.example")  # the window is over

    # A new offending flow during the window restarts the timer.
    probe.call(send_garbage, ok2, 443, b"GARBAGE!" * 8)
    first = time.monotonic()
    time.sleep(1.2)
    probe.call(send_garbage, ok2, 443, b"GARBAGE!" * 8)
    second = time.monotonic()
    time.sleep(max(0.0, first + 2.3 - time.monotonic()))
    assert tls(ok2, "ok2.example") == "generic_timeout_error"  # past the first window
    time.sleep(max(0.0, second + 2.4 - time.monotonic()))
    assert passes(ok2, "ok2.example")


def test_shutdown_blackhole_keeps_domestic_reachable(
    probe: InNamespace, scenario: Scenario
) -> None:
    ok = ip_of(scenario, "ok.example")
    try:
        netns.configure(shutdown="blackhole")
        assert probe.call(tcp_connect, ok, 443, 1.0) == "generic_timeout_error"
        assert probe.call(dns_replies, P.HONEST_RESOLVER, "ok.example", 1.0) == []
        # Domestic: the ISP resolver answers and the domestic site serves.
        dom = probe.call(dns_replies, ISP, P.DOMESTIC_SITE_NAME)
        assert [r[2] for r in dom] == [[P.DOMESTIC_SITE_IP]]
        page = probe.call(http_get, P.DOMESTIC_SITE_IP, P.DOMESTIC_SITE_NAME)
        assert not isinstance(page, str) and page[0] == 200
    finally:
        netns.configure(shutdown="")
    assert probe.call(tcp_connect, ok, 443) == "ok"


def test_shutdown_curfew_window(probe: InNamespace, scenario: Scenario) -> None:
    ok = ip_of(scenario, "ok.example")
    now = dt.datetime.now(dt.UTC)

    def hhmm(delta_min: int) -> str:
        return (now + dt.timedelta(minutes=delta_min)).strftime("%H:%M")

    try:
        netns.configure(shutdown="curfew", curfew=(hhmm(120), hhmm(180)))
        assert probe.call(tcp_connect, ok, 443) == "ok"  # outside the window
        netns.configure(shutdown="curfew", curfew=(hhmm(-2), hhmm(3)))
        assert probe.call(tcp_connect, ok, 443, 1.0) == "generic_timeout_error"
    finally:
        netns.configure(shutdown="")
    assert probe.call(tcp_connect, ok, 443) == "ok"


def test_shutdown_reset_after_delay(probe: InNamespace, scenario: Scenario) -> None:
    ok = ip_of(scenario, "ok.example")
    try:
        netns.configure(shutdown="reset_after", reset_after=1.0)
        assert probe.call(idle_then_request, ok, "ok.example", 0.0) == "ok"
        assert probe.call(idle_then_request, ok, "ok.example", 1.3) == "connection_reset"
    finally:
        netns.configure(shutdown="")
    assert probe.call(idle_then_request, ok, "ok.example", 1.3) == "ok"


def test_configure_rejects_bad_input_and_changes_nothing() -> None:
    before = (netns.state_dir() / "plan.json").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="shutdown must be one of"):
        netns.configure(shutdown="everything")
    with pytest.raises(ValueError, match="HH:MM"):
        netns.configure(shutdown="curfew", curfew=("25:00", "26:00"))
    with pytest.raises(ValueError, match="HH:MM"):  # str.isdigit says yes to "²"
        netns.configure(shutdown="curfew", curfew=("²:00", "06:00"))
    with pytest.raises(ValueError, match="needs the scenario"):
        netns.configure(profile="TCI-like")
    assert (netns.state_dir() / "plan.json").read_text(encoding="utf-8") == before


def test_no_packet_leaves_the_lab(lab: LabNetwork) -> None:
    # Runs last: every test above has sent its traffic by now.
    assert topology.host_leak_count() == 0
    assert topology.chain_packets(P.NS_CENSOR, "dideban-leak") == 0
    # The lab's own links did carry the traffic (the counters above can see packets).
    stats = topology.run(topology.in_ns(P.NS_CENSOR, "ip", "-s", "-j", "link", "show", "p0"))
    assert json.loads(stats)[0]["stats64"]["rx"]["packets"] > 100
    # Lab namespaces have no link but loopback and their veths; the probe has no default
    # route and cannot even route to the blockpage address.
    for ns in P.NAMESPACES:
        links = json.loads(topology.run(topology.in_ns(ns, "ip", "-j", "link", "show")))
        kinds = {link.get("link_type") for link in links}
        assert kinds <= {"loopback", "ether"}
        names = {link["ifname"] for link in links}
        assert names <= {"lo", "eth0", "p0", "i0", "d0"}
    routes = topology.run(topology.in_ns(P.NS_PROBE, "ip", "route", "show"))
    assert "default" not in routes
    unreachable = ns_exec(P.NS_PROBE, "ip", "route", "get", "10.10.34.35")
    assert unreachable.returncode != 0 and "unreachable" in unreachable.stderr
