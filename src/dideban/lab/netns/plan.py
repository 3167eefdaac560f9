"""The netns lab's plan: addresses, namespaces and what each element does, derived from a scenario.

Everything here is pure: `make_plan(scenario, profile=...)` turns a scenario into a JSON-able
`Plan` that the topology builder, the censor daemon and the lab's servers all read from the
state directory. Keeping it data means `down` and a crashed run never need the scenario again.

Addressing (all from the documentation ranges; 192.0.2.0/24 is taken on these machines):

    probe ns  eth0  <probe_public_ip>/32 ---- censor ns  p0  198.18.255.1
    censor ns i0  198.18.255.5/30 ---- inet ns  eth0 198.18.255.6/30 + every site IP,
                                              honest resolver, test helper, collector
    censor ns d0  198.18.255.9/30 ---- domestic ns eth0 198.18.255.10/30 + ISP resolver,
                                              a domestic site

The probe namespace only has routes to the lab ranges, via the censor; there is no default
route, so a DNS answer such as 10.10.34.35 can never become a packet.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import asdict, dataclass, field
from typing import Any

from dideban.lab.scenario import IspProfile, Scenario
from dideban.model.labnet import LAB_RANGES

PREFIX = "dideban-"
NS_PROBE = "dideban-probe"
NS_CENSOR = "dideban-censor"
NS_INET = "dideban-inet"
NS_DOMESTIC = "dideban-domestic"
NAMESPACES = (NS_PROBE, NS_CENSOR, NS_INET, NS_DOMESTIC)

CENSOR_PROBE_SIDE = "198.18.255.1"
CENSOR_INET_SIDE = "198.18.255.5"
INET_ADDR = "198.18.255.6"
CENSOR_DOMESTIC_SIDE = "198.18.255.9"
DOMESTIC_ADDR = "198.18.255.10"
ISP_RESOLVER = "198.18.254.53"
DOMESTIC_SITE_IP = "198.18.254.80"
DOMESTIC_SITE_NAME = "www.domestic.ir.lab"
DOMESTIC_PREFIX = "198.18.254.0/24"
HONEST_RESOLVER = "198.51.100.53"
TEST_HELPER_IP = "198.51.100.80"
# The sites listen on :80/:443 of every address of the inet namespace (one wildcard socket
# each), so the lab's own services use other ports.
TEST_HELPER_PORT = 8080
COLLECTOR_PORT = 8080
COLLECTOR_IP = "198.51.100.81"
# Addresses the topology itself uses; scenario sites must not take them.
RESERVED = ipaddress.IPv4Network("198.18.254.0/23")
INFRA = (HONEST_RESOLVER, TEST_HELPER_IP, COLLECTOR_IP)

NFQUEUE_NUM = 7
# The lab's upstream resolver holds true answers for dns_inject names this long, so the
# on-path forgery wins the race (the kernel has no netem to delay packets).
INJECT_RACE_DELAY = 0.05

DEFAULT_BLOCKPAGE = (
    '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1256">'
    "<title>M3</title></head><body><iframe "
    'src="http://10.10.34.34?type=Invalid Site&policy=MainPolicy" style="width: 100%; '
    'height: 100%" scrolling="no" marginwidth="0" marginheight="0" frameborder="0" '
    'vspace="0" hspace="0"></iframe></body></html>'
)


class PlanError(ValueError):
    """A scenario the netns lab cannot build (message says why)."""


@dataclass
class SitePlan:
    domain: str
    ip: str
    title: str
    server: str  # ok | nxdomain | refused | tls_expired | tls_wrong_name
    echo_client: bool = False
    delay_ms: int = 0
    rate_kbps: int = 0


@dataclass
class CensorPlan:
    """What the censor daemon matches on; reloadable at run time (SIGHUP)."""

    sni_reset: list[str] = field(default_factory=list)
    sni_drop: list[str] = field(default_factory=list)
    host_blockpage: list[str] = field(default_factory=list)
    host_reset: list[str] = field(default_factory=list)
    dns_inject: dict[str, str] = field(default_factory=dict)
    blockpage_html: str = DEFAULT_BLOCKPAGE
    # Iran's protocol filter: window in seconds, 0 = off.
    protocol_filter_window: float = 60.0
    # "reset_after": RST both ends of any 53/80/443 TCP flow older than this many seconds.
    reset_after: float = 0.0


@dataclass
class Plan:
    scenario: str
    profile: str
    probe_cc: str
    probe_asn: str
    probe_network_name: str
    probe_ip: str
    blockpage_ip: str
    sites: list[SitePlan]
    censor: CensorPlan
    # Censor IP-layer techniques.
    tcp_reset_ips: list[str] = field(default_factory=list)
    tcp_timeout_ips: list[str] = field(default_factory=list)
    # ISP resolver techniques: domain -> ("hijack", ip) | ("nxdomain", "") | ("timeout", "")
    # | ("inject", "") (true answer, late).
    isp_dns: dict[str, list[str]] = field(default_factory=dict)
    # Shutdown: "" | "blackhole" | "curfew" | "reset_after"; curfew window "HH:MM" UTC.
    shutdown: str = ""
    curfew_start: str = ""
    curfew_stop: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        values = dict(data)
        values["sites"] = [SitePlan(**s) for s in values["sites"]]
        values["censor"] = CensorPlan(**values["censor"])
        return cls(**values)

    def site_ips(self) -> list[str]:
        return sorted({s.ip for s in self.sites}, key=ipaddress.IPv4Address)

    def throttled(self) -> dict[str, int]:
        return {s.ip: s.rate_kbps for s in self.sites if s.rate_kbps > 0}


def _title(domain: str, title: str) -> str:
    return title or f"{domain.split('.')[0].capitalize()} — lab site {domain}"


def pick_profile(scenario: Scenario, name: str | None) -> IspProfile | None:
    if name is None:
        return None
    for p in scenario.profiles:
        if p.name.lower() == name.lower():
            return p
    known = [p.name for p in scenario.profiles] or ["MCI-like", "TCI-like"]
    # The two Iranian profiles exist even when a scenario does not list them.
    builtin = {
        "mci-like": IspProfile("MCI-like", "AS197207", "Mobile Communication Company of Iran PLC"),
        "tci-like": IspProfile(
            "TCI-like", "AS58224", "Iran Telecommunication Company PJS", tls_block="drop"
        ),
    }
    if name.lower() in builtin:
        return builtin[name.lower()]
    raise PlanError(f"no ISP profile {name!r}; known: {known}")


def _check_address(ip: str, where: str) -> None:
    addr = ipaddress.IPv4Address(ip)
    if not any(addr in net for net in LAB_RANGES):
        raise PlanError(f"{where}: {ip} is not a lab address")
    if addr in RESERVED or ip in INFRA:
        raise PlanError(f"{where}: {ip} is reserved for the netns lab's own hosts ({RESERVED})")


def make_plan(
    scenario: Scenario,
    *,
    profile: str | None = None,
    protocol_filter_window: float = 60.0,
) -> Plan:
    """The lab plan for `scenario`; raises PlanError for what the netns lab cannot build."""
    prof = pick_profile(scenario, profile)
    if protocol_filter_window < 0:
        raise PlanError("protocol_filter_window must be >= 0")
    try:
        _check_address(scenario.probe_public_ip, "probe.public_ip")
        for s in scenario.sites:
            _check_address(s.ip, s.domain)
    except ValueError as exc:
        if isinstance(exc, PlanError):
            raise
        raise PlanError(f"not an IPv4 address: {exc}") from exc
    if scenario.probe_public_ip in {s.ip for s in scenario.sites}:
        raise PlanError("probe.public_ip is also a site address")
    if ipaddress.IPv4Address(scenario.blockpage_ip) in ipaddress.IPv4Network("127.0.0.0/8"):
        raise PlanError("blockpage ip must not be loopback")

    censor = CensorPlan(
        blockpage_html=scenario.blockpage_html or DEFAULT_BLOCKPAGE,
        protocol_filter_window=protocol_filter_window,
    )
    plan = Plan(
        scenario=scenario.name,
        profile=prof.name if prof else "",
        probe_cc=scenario.probe_cc,
        probe_asn=prof.asn if prof else scenario.probe_asn,
        probe_network_name=prof.network_name if prof else scenario.probe_network_name,
        probe_ip=scenario.probe_public_ip,
        blockpage_ip=scenario.blockpage_ip,
        sites=[],
        censor=censor,
    )
    for s in scenario.sites:
        sp = SitePlan(s.domain, s.ip, _title(s.domain, s.title), s.server, s.echo_client)
        for c in s.censor:
            t = c.technique
            if t == "dns_hijack":
                plan.isp_dns[s.domain] = [
                    "hijack",
                    str(c.params.get("answer", scenario.blockpage_ip)),
                ]
            elif t == "dns_nxdomain":
                plan.isp_dns[s.domain] = ["nxdomain", ""]
            elif t == "dns_timeout":
                plan.isp_dns[s.domain] = ["timeout", ""]
            elif t == "dns_inject":
                plan.isp_dns[s.domain] = ["inject", ""]
                censor.dns_inject[s.domain] = str(c.params.get("answer", scenario.blockpage_ip))
            elif t == "tcp_reset":
                plan.tcp_reset_ips.append(s.ip)
            elif t == "tcp_timeout":
                plan.tcp_timeout_ips.append(s.ip)
            elif t in ("tls_reset", "tls_timeout"):
                action = {"tls_reset": "reset", "tls_timeout": "drop"}[t]
                if prof is not None:
                    action = "drop" if prof.tls_block == "drop" else "reset"
                (censor.sni_reset if action == "reset" else censor.sni_drop).append(s.domain)
            elif t == "http_blockpage":
                censor.host_blockpage.append(s.domain)
            elif t == "http_reset":
                censor.host_reset.append(s.domain)
            elif t == "throttle":
                sp.delay_ms = int(c.params.get("delay_ms", 0))
                sp.rate_kbps = int(c.params.get("rate_kbps", 0))
                if sp.delay_ms < 0 or sp.rate_kbps < 0:
                    raise PlanError(f"{s.domain}: throttle parameters must be >= 0")
            else:  # pragma: no cover - the scenario parser rejects unknown techniques
                raise PlanError(f"{s.domain}: technique {t} not supported by the netns lab")
        plan.sites.append(sp)
    return plan


def page_body(site: SitePlan) -> bytes:
    """A deterministic page with a distinct title and a few KiB of text."""
    seed = hashlib.sha256(site.domain.encode()).hexdigest()
    filler = " ".join(seed[i : i + 8] for i in range(0, 64, 8))
    paras = "".join(f"<p>{site.domain} paragraph {i}: {filler}</p>\n" for i in range(24))
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{site.title}</title>'
        f"</head>\n<body><h1>{site.title}</h1>\n{paras}</body></html>\n"
    ).encode()


def matches(name: str, domains: list[str]) -> bool:
    """Is host `name` one of the censored `domains`?

    Exact names, as the scenario lists them: a scenario may block aja.ir and expect
    padafand.aja.ir to work (generated scenarios do), so subdomains are not matched.
    """
    return name in domains
