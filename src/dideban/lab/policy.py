"""The userspace lab's decisions, as pure functions of the scenario.

What each resolver answers, what the censor does to a flow once it has read the SNI or Host,
which certificate a name gets, what page a site serves and which loopback endpoint plays each
lab address. `userspace.py` only moves bytes according to these answers.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from typing import Literal

from dideban.lab.scenario import IspProfile, Scenario, ScenarioError, Site

DnsKind = Literal["answer", "nxdomain", "empty", "silent", "inject"]
ActionKind = Literal["pass", "reset", "drop", "blockpage"]

# A resolver that injects races the true reply: the forgery leaves at once, the true answer
# this much later (on-path injectors win because they sit closer than the real resolver).
INJECT_TRUE_REPLY_DELAY = 0.075

DEFAULT_BLOCKPAGE = (
    "<html><head><title>Blocked</title></head><body>"
    "<p>Access to this site is blocked.</p></body></html>"
)


@dataclass(frozen=True)
class DnsDecision:
    kind: DnsKind
    address: str = ""  # the (true) A answer
    forged: str = ""  # inject: the forged A answer, sent first


@dataclass(frozen=True)
class CensorAction:
    kind: ActionKind
    delay_s: float = 0.0  # throttle: added before the first byte in each direction
    rate_bps: float = 0.0  # throttle: bandwidth cap in bytes/s (0: none)


PASS = CensorAction("pass")


def pick_profile(scenario: Scenario, name: str | None) -> IspProfile | None:
    """The ISP profile named `name`, or (no name) the one whose ASN is the probe's."""
    if name is None:
        return next((p for p in scenario.profiles if p.asn == scenario.probe_asn), None)
    for p in scenario.profiles:
        if p.name == name:
            return p
    known = [p.name for p in scenario.profiles]
    raise ScenarioError(f"scenario {scenario.name}: no ISP profile {name!r}; known: {known}")


class LabPolicy:
    def __init__(self, scenario: Scenario, profile: IspProfile | None = None) -> None:
        self.scenario = scenario
        self.profile = profile
        self._sites = {s.domain.lower(): s for s in scenario.sites}

    # --- names -------------------------------------------------------------------------

    def site(self, name: str) -> Site | None:
        return self._sites.get(name.lower().rstrip("."))

    def _censored(self, site: Site, technique: str) -> dict[str, object] | None:
        for c in site.censor:
            if c.technique == technique:
                return dict(c.params)
        return None

    # --- DNS -----------------------------------------------------------------------------

    def honest_dns(self, qname: str, qtype: str) -> DnsDecision:
        site = self.site(qname)
        if site is None or site.server == "nxdomain":
            return DnsDecision("nxdomain")
        if qtype != "A":
            return DnsDecision("empty")
        return DnsDecision("answer", site.ip)

    def isp_dns(self, qname: str, qtype: str) -> DnsDecision:
        """The probe's ISP resolver, which applies the censor's DNS techniques."""
        site = self.site(qname)
        if site is None or site.server == "nxdomain":
            return DnsDecision("nxdomain")
        if self._censored(site, "dns_timeout") is not None:
            return DnsDecision("silent")
        if self._censored(site, "dns_nxdomain") is not None:
            return DnsDecision("nxdomain")
        if qtype != "A":
            return DnsDecision("empty")
        hijack = self._censored(site, "dns_hijack")
        if hijack is not None:
            return DnsDecision("answer", str(hijack.get("answer") or self.scenario.blockpage_ip))
        inject = self._censored(site, "dns_inject")
        if inject is not None:
            forged = str(inject.get("answer") or self.scenario.blockpage_ip)
            return DnsDecision("inject", site.ip, forged)
        return DnsDecision("answer", site.ip)

    def forged_answers(self) -> set[str]:
        """Every address the ISP resolver may answer that is not a site's own."""
        out = set()
        for s in self.scenario.sites:
            for c in s.censor:
                if c.technique in ("dns_hijack", "dns_inject"):
                    out.add(str(c.params.get("answer") or self.scenario.blockpage_ip))
        return out

    # --- the on-path censor ---------------------------------------------------------------

    def censor_action(self, kind: Literal["http", "tls"], name: str) -> CensorAction:
        site = self.site(name) if name else None
        if site is None:
            return PASS
        if kind == "tls":
            if self._censored(site, "tls_timeout") is not None:
                return CensorAction("drop")
            if self._censored(site, "tls_reset") is not None:
                drop = self.profile is not None and self.profile.tls_block == "drop"
                return CensorAction("drop" if drop else "reset")
        else:
            if self._censored(site, "http_reset") is not None:
                return CensorAction("reset")
            if self._censored(site, "http_blockpage") is not None:
                return CensorAction("blockpage")
        throttle = self._censored(site, "throttle")
        if throttle is not None:
            delay = float(str(throttle.get("delay_ms", 0))) / 1000
            rate = float(str(throttle.get("rate_kbps", 0))) * 1000 / 8
            return CensorAction("pass", delay, rate)
        return PASS

    # --- sites ------------------------------------------------------------------------------

    def leaf_for(self, name: str) -> tuple[list[str], bool] | None:
        site = self.site(name)
        if site is None:
            return None
        if site.server == "tls_wrong_name":
            return [f"not-{site.domain}"], False
        return [site.domain], site.server == "tls_expired"

    @property
    def blockpage_html(self) -> str:
        return self.scenario.blockpage_html or DEFAULT_BLOCKPAGE


def site_title(site: Site) -> str:
    return site.title or f"{site.domain} (lab site)"


def site_page(site: Site, *, client_ip: str = "", peer: str = "") -> str:
    """The site's HTML page: a distinct title and a body long enough (1.5-5 kB, different
    per site) for web_connectivity's body-length comparison to mean something."""
    title = html.escape(site_title(site))
    seed = int.from_bytes(hashlib.sha256(site.domain.encode()).digest()[:4], "big")
    paragraphs = 10 + seed % 25
    body = [f"<h1>{title}</h1>"]
    if site.echo_client:
        body.append(f'<p id="client">Your address: {client_ip} (peer {peer})</p>')
    for i in range(paragraphs):
        body.append(
            f"<p>Paragraph {i + 1} of {site.domain}: news, culture and commentary from the "
            f"Dideban lab's emulated Internet, served for category {site.category_code}.</p>"
        )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
