"""web_connectivity's measurement order and test_keys, over a scripted fake measurer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from dideban.nettests import all_nettests, get
from dideban.nettests.web_connectivity import TEST_NAME, WebConnectivityContext, measure
from dideban.nettests.web_connectivity.measurer import ArchivalKeys, ControlOutcome, DNSOutcome

SITE = "203.0.113.7"
PAGE = "<html><title>Radio Farda news</title>" + "y" * 500 + "</html>"


@dataclass
class FakeWorld:
    """What the probe's network does, and what the control sees."""

    dns: dict[str, DNSOutcome] = field(default_factory=dict)
    connect: dict[str, str | None] = field(default_factory=dict)  # "ip:port" -> failure
    http: dict[str, tuple[int, str] | str] = field(
        default_factory=dict
    )  # url -> (code, body) | failure
    control: dict[str, Any] | None = None
    calls: list[str] = field(default_factory=list)


class FakeMeasurer:
    def __init__(self, world: FakeWorld) -> None:
        self.world = world
        self.keys = ArchivalKeys()

    async def lookup_getaddrinfo(self, domain: str) -> DNSOutcome:
        self.world.calls.append(f"getaddrinfo {domain}")
        out = self.world.dns.get(domain, DNSOutcome([], "dns_nxdomain_error"))
        self.keys.queries.append(
            {
                "engine": "getaddrinfo",
                "hostname": domain,
                "failure": out.failure,
                "answers": [{"answer_type": "A", "ipv4": a} for a in out.addrs],
            }
        )
        return out

    async def lookup_udp(self, domain: str) -> DNSOutcome:
        self.world.calls.append(f"udp {domain}")
        return self.world.dns.get(domain, DNSOutcome([], "dns_nxdomain_error"))

    async def tcp_connect(self, ip: str, port: int, server_name: str | None) -> str | None:
        self.world.calls.append(f"connect {ip}:{port} sni={server_name}")
        failure = self.world.connect.get(f"{ip}:{port}", "connection_refused")
        self.keys.tcp_connect.append(
            {"ip": ip, "port": port, "status": {"success": failure is None, "failure": failure}}
        )
        return failure

    async def http_get(self, url: str, headers: dict[str, str]) -> str | None:
        self.world.calls.append(f"get {url}")
        got = self.world.http.get(url, "connection_refused")
        if isinstance(got, str):
            self.keys.requests.append({"request": {"url": url}, "failure": got, "response": None})
            return got
        code, body = got
        self.keys.requests.append(
            {
                "request": {"url": url},
                "failure": None,
                "response": {"code": code, "body": body, "headers": {"Content-Type": "text/html"}},
            }
        )
        return None

    async def control(self, helper_url: str, request: dict[str, Any]) -> ControlOutcome:
        self.world.calls.append(f"control {helper_url} {sorted(request['tcp_connect'])}")
        if self.world.control is None:
            return ControlOutcome(None, "connection_refused")
        return ControlOutcome(self.world.control, None)

    def archival(self) -> dict[str, Any]:
        return self.keys.as_dict()


def _control(addrs: list[str], port: int = 80) -> dict[str, Any]:
    return {
        "dns": {"addrs": addrs, "failure": None},
        "tcp_connect": {f"{a}:{port}": {"status": True, "failure": None} for a in addrs},
        "http_request": {
            "status_code": 200,
            "body_length": len(PAGE),
            "title": "Radio Farda news",
            "headers": {"Content-Type": "text/html"},
            "failure": None,
        },
    }


def _ctx(world: FakeWorld) -> WebConnectivityContext:
    return WebConnectivityContext(lambda: FakeMeasurer(world), "http://127.0.0.1:9/", "127.0.0.1")


def test_registry_has_web_connectivity() -> None:
    nt = get(TEST_NAME)
    assert (nt.name, nt.input_kind) == ("web_connectivity", "url")
    assert nt.version.startswith("0.4.")
    assert nt in all_nettests()
    with pytest.raises(KeyError, match="no nettest named"):
        get("nope")


async def test_working_site_all_keys_and_accessible() -> None:
    world = FakeWorld(
        dns={"news.example": DNSOutcome([SITE], None)},
        connect={f"{SITE}:80": None},
        http={"http://news.example/": (200, PAGE)},
        control=_control([SITE]),
    )
    tk = await measure("http://news.example/", _ctx(world))
    required = {
        "queries", "tcp_connect", "tls_handshakes", "requests", "network_events", "control",
        "control_failure", "dns_consistency", "dns_experiment_failure", "http_experiment_failure",
        "body_length_match", "body_proportion", "status_code_match", "headers_match",
        "title_match", "blocking", "accessible", "x_blocking_flags", "client_resolver",
        "retries", "socksproxy", "agent", "x_control_request", "x_dns_duplicate_responses",
    }  # fmt: skip
    assert required <= set(tk)
    assert (tk["blocking"], tk["accessible"], tk["dns_consistency"]) == (False, True, "consistent")
    assert tk["x_control_request"]["tcp_connect"] == [f"{SITE}:80"]
    assert tk["x_control_request"]["http_request"] == "http://news.example/"


async def test_https_uses_sni_and_connects_to_control_only_addresses() -> None:
    other = "203.0.113.8"
    world = FakeWorld(
        dns={"secure.example": DNSOutcome([SITE], None)},
        connect={f"{SITE}:443": "connection_reset", f"{other}:443": None},
        http={"https://secure.example/": "connection_reset"},
        control=_control([SITE, other], 443),
    )
    tk = await measure("https://secure.example/", _ctx(world))
    assert f"connect {SITE}:443 sni=secure.example" in world.calls
    assert f"connect {other}:443 sni=secure.example" in world.calls
    # Only the probe's own addresses count for the classic TCP verdict: all failed -> tcp_ip.
    assert tk["blocking"] == "tcp_ip"


async def test_dns_hijack_and_unreachable_control() -> None:
    world = FakeWorld(
        dns={"facebook.com": DNSOutcome(["10.10.34.35"], None)},
        control=_control([SITE]),
    )
    tk = await measure("http://facebook.com/", _ctx(world))
    assert (tk["blocking"], tk["accessible"]) == ("dns", False)
    world.control = None
    tk = await measure("http://facebook.com/", _ctx(world))
    assert (tk["blocking"], tk["accessible"], tk["control_failure"]) == (
        None,
        None,
        "connection_refused",
    )


async def test_ip_literal_url_skips_dns() -> None:
    world = FakeWorld(
        connect={f"{SITE}:80": None}, http={f"http://{SITE}/": (200, PAGE)}, control=_control([])
    )
    tk = await measure(f"http://{SITE}/", _ctx(world))
    assert not any(c.startswith(("getaddrinfo", "udp")) for c in world.calls)
    assert tk["dns_consistency"] == "consistent"
    assert tk["dns_experiment_failure"] is None


async def test_run_rejects_a_foreign_context() -> None:
    with pytest.raises(TypeError):
        await get(TEST_NAME).run("http://x.org/", object())
