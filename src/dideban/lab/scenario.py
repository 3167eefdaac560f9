"""Censorship-lab scenarios: data, not code.

A scenario file (YAML) describes the probe's network, the sites of the lab's Internet and what
the censor does to each. Both lab runners read it: the userspace lab (`dideban.lab`, loopback
only) and the network-namespace lab (real packets through an on-path censor). The expected
outcome of each site is part of the data, so the expectation matrix test is one loop.

Censor techniques (`Site.censor`, each a mapping with `technique` and its parameters):
  dns_hijack   {answer: "10.10.34.35"}  ISP resolver answers the blockpage address
  dns_nxdomain                          ISP resolver says NXDOMAIN
  dns_timeout                           ISP resolver never answers
  dns_inject   {answer: ip}             a forged reply races (and beats) the true reply
  tcp_reset                             connections to the site's IP are refused/reset
  tcp_timeout                           SYNs to the site's IP are dropped
  tls_reset                             RST on a ClientHello whose SNI matches the domain
  tls_timeout                           ClientHello with matching SNI is dropped (stall)
  http_blockpage                        plain-HTTP request with matching Host gets the blockpage
  http_reset                            plain-HTTP request with matching Host gets an RST
  throttle     {delay_ms, rate_kbps}    latency plus a bandwidth cap
Site-side behaviours (`Site.server`, the negative controls):
  ok | nxdomain (down everywhere) | refused (down everywhere) | tls_expired | tls_wrong_name
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from dideban.model.labnet import is_lab_address

TECHNIQUES: dict[str, tuple[str, ...]] = {
    # technique -> allowed parameter names
    "dns_hijack": ("answer",),
    "dns_nxdomain": (),
    "dns_timeout": (),
    "dns_inject": ("answer",),
    "tcp_reset": (),
    "tcp_timeout": (),
    "tls_reset": (),
    "tls_timeout": (),
    "http_blockpage": (),
    "http_reset": (),
    "throttle": ("delay_ms", "rate_kbps"),
}
SERVER_BEHAVIOURS: tuple[str, ...] = ("ok", "nxdomain", "refused", "tls_expired", "tls_wrong_name")


class ScenarioError(ValueError):
    """A scenario file that does not describe a valid lab (message says where and why)."""


@dataclass(frozen=True)
class Censorship:
    technique: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Expectation:
    """What web_connectivity must conclude for this site (OONI's `blocking`/`accessible`)."""

    blocking: str | bool | None
    accessible: bool | None


@dataclass(frozen=True)
class Site:
    url: str
    ip: str
    category_code: str = "MISC"
    title: str = ""
    server: str = "ok"
    censor: tuple[Censorship, ...] = ()
    expect: Expectation | None = None
    # Echo the client's (lab public) address in the body and headers (privacy tests).
    echo_client: bool = False

    @property
    def domain(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    def techniques(self) -> set[str]:
        return {c.technique for c in self.censor}


@dataclass(frozen=True)
class IspProfile:
    """How the censor blocks at the TLS/TCP layer: MCI-like resets, TCI-like drops."""

    name: str
    asn: str
    network_name: str
    tls_block: str = "reset"  # "reset" | "drop"


@dataclass(frozen=True)
class Scenario:
    name: str
    probe_cc: str
    probe_asn: str
    probe_network_name: str
    probe_public_ip: str
    blockpage_ip: str
    blockpage_html: str
    sites: tuple[Site, ...]
    profiles: tuple[IspProfile, ...] = ()
    description: str = ""

    def site(self, domain: str) -> Site:
        for s in self.sites:
            if s.domain == domain:
                return s
        raise KeyError(domain)


def _fail(where: str, why: str) -> ScenarioError:
    return ScenarioError(f"{where}: {why}")


def _parse_site(raw: Any, where: str) -> Site:
    if not isinstance(raw, dict):
        raise _fail(where, "a site must be a mapping")
    url = raw.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise _fail(where, f"url must be an http(s) URL, got {url!r}")
    if not urlsplit(url).hostname:
        raise _fail(where, f"url has no host: {url!r}")
    ip = raw.get("ip")
    if not isinstance(ip, str) or not is_lab_address(ip):
        raise _fail(
            where, f"ip must be in 198.18.0.0/15, 198.51.100.0/24 or 203.0.113.0/24, got {ip!r}"
        )
    server = raw.get("server", "ok")
    if server not in SERVER_BEHAVIOURS:
        raise _fail(where, f"server must be one of {SERVER_BEHAVIOURS}, got {server!r}")
    censor: list[Censorship] = []
    for i, item in enumerate(raw.get("censor") or []):
        if isinstance(item, str):
            item = {"technique": item}
        if not isinstance(item, dict) or item.get("technique") not in TECHNIQUES:
            raise _fail(
                f"{where}.censor[{i}]", f"unknown technique {item!r}; known: {sorted(TECHNIQUES)}"
            )
        params = {k: v for k, v in item.items() if k != "technique"}
        extra = set(params) - set(TECHNIQUES[item["technique"]])
        if extra:
            raise _fail(f"{where}.censor[{i}]", f"unknown parameters {sorted(extra)}")
        if "answer" in params:
            try:
                ipaddress.ip_address(params["answer"])
            except ValueError as exc:
                raise _fail(f"{where}.censor[{i}]", f"answer is not an IP address: {exc}") from exc
        censor.append(Censorship(item["technique"], params))
    expect = None
    if "expect" in raw:
        e = raw["expect"]
        if not isinstance(e, dict) or "blocking" not in e or "accessible" not in e:
            raise _fail(where, "expect needs blocking and accessible")
        if e["blocking"] not in (False, None, "dns", "tcp_ip", "http-failure", "http-diff"):
            raise _fail(where, f"expect.blocking invalid: {e['blocking']!r}")
        expect = Expectation(e["blocking"], e["accessible"])
    return Site(
        url=url,
        ip=ip,
        category_code=str(raw.get("category_code", "MISC")),
        title=str(raw.get("title", "")),
        server=server,
        censor=tuple(censor),
        expect=expect,
        echo_client=bool(raw.get("echo_client", False)),
    )


def parse_scenario(data: Any, where: str = "scenario") -> Scenario:
    if not isinstance(data, dict):
        raise _fail(where, "a scenario must be a mapping")
    probe = data.get("probe") or {}
    for key in ("cc", "asn", "network_name", "public_ip"):
        if key not in probe:
            raise _fail(f"{where}.probe", f"missing {key}")
    if not is_lab_address(str(probe["public_ip"])):
        raise _fail(f"{where}.probe", "public_ip must be a lab (documentation) address")
    sites = tuple(
        _parse_site(s, f"{where}.sites[{i}]") for i, s in enumerate(data.get("sites") or [])
    )
    if not sites:
        raise _fail(where, "no sites")
    seen: set[str] = set()
    for s in sites:
        if s.domain in seen:
            raise _fail(where, f"duplicate site domain {s.domain}")
        seen.add(s.domain)
    profiles = tuple(
        IspProfile(
            name=str(p["name"]),
            asn=str(p["asn"]),
            network_name=str(p.get("network_name", p["name"])),
            tls_block=str(p.get("tls_block", "reset")),
        )
        for p in data.get("profiles") or []
    )
    blockpage = data.get("blockpage") or {}
    return Scenario(
        name=str(data.get("name", where)),
        probe_cc=str(probe["cc"]),
        probe_asn=str(probe["asn"]),
        probe_network_name=str(probe["network_name"]),
        probe_public_ip=str(probe["public_ip"]),
        blockpage_ip=str(blockpage.get("ip", "10.10.34.35")),
        blockpage_html=str(blockpage.get("html", "")),
        sites=sites,
        profiles=profiles,
        description=str(data.get("description", "")),
    )


SCENARIO_DIR = Path(__file__).parent / "scenarios"


def load_scenario(name_or_path: str) -> Scenario:
    """Load a built-in scenario by name (`iran`) or a YAML file by path."""
    path = Path(name_or_path)
    if not path.exists():
        path = SCENARIO_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
        raise ScenarioError(f"no scenario {name_or_path!r}; built-in: {known}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from exc
    return parse_scenario(data, str(path))
