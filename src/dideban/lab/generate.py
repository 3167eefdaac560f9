"""Scenarios generated from a Citizen Lab test list, for benchmarks and large matrix runs.

One site per distinct hostname (URLs sharing a hostname share the site), addresses from
198.18.0.0/15, a seeded random share of sites censored with a weighted mix of techniques, and
each site's `expect` filled in by `expectation_for`, the same rule the hand-written scenarios
follow (OONI web_connectivity's classic analysis).
"""

from __future__ import annotations

import csv
import ipaddress
import random
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from dideban.lab.scenario import (
    TECHNIQUES,
    Censorship,
    Expectation,
    Scenario,
    ScenarioError,
    Site,
    load_scenario,
    parse_scenario,
)

# Weights of the techniques given to censored sites. Timeouts are rarer: each one costs the
# probe a full timeout.
DEFAULT_MIX: dict[str, float] = {
    "dns_hijack": 3,
    "dns_nxdomain": 1,
    "dns_timeout": 0.5,
    "dns_inject": 1,
    "tcp_reset": 2,
    "tcp_timeout": 0.5,
    "tls_reset": 3,
    "tls_timeout": 0.5,
    "http_blockpage": 3,
    "http_reset": 1,
}
FIRST_SITE_IP = ipaddress.IPv4Address("198.18.0.10")
LAST_SITE_IP = ipaddress.IPv4Address("198.19.255.254")

_DNS = {"dns_hijack", "dns_nxdomain", "dns_timeout", "dns_inject"}
_TCP = {"tcp_reset", "tcp_timeout"}
_TLS = {"tls_reset", "tls_timeout"}
_HTTP = {"http_reset", "http_blockpage"}


def applies_to(technique: str, schemes: set[str]) -> bool:
    """Whether a technique affects a site reached with these URL schemes (a Host-based
    block never sees an https flow; an SNI-based one never sees plain HTTP)."""
    if technique in _TLS:
        return schemes == {"https"}
    if technique in _HTTP:
        return schemes == {"http"}
    return True


def expectation_for(site: Site) -> Expectation:
    """What OONI web_connectivity (classic analysis) concludes for `site` at its URL.

    DNS tampering is seen first ("dns"), then a failed TCP connect ("tcp_ip"), then a failed
    TLS handshake or HTTP exchange ("http-failure") or a different page ("http-diff").
    Throttling is not censorship by OONI's rules. A site down for everyone, or one whose
    server's TLS is broken for everyone, is not accessible and not blocked.
    """
    t = site.techniques()
    if site.server in ("nxdomain", "refused"):
        return Expectation(False, False)
    if t & _DNS:
        return Expectation("dns", False)
    if t & _TCP:
        return Expectation("tcp_ip", False)
    if site.scheme == "https" and t & _TLS:
        return Expectation("http-failure", False)
    if site.scheme == "http" and "http_reset" in t:
        return Expectation("http-failure", False)
    if site.scheme == "http" and "http_blockpage" in t:
        return Expectation("http-diff", False)
    if site.scheme == "https" and site.server in ("tls_expired", "tls_wrong_name"):
        return Expectation(False, False)
    return Expectation(False, True)


def _read_hosts(csv_path: Path) -> list[tuple[str, str, str, set[str]]]:
    """(hostname, first URL, its category, every scheme seen for the host), in list order."""
    try:
        text = csv_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{csv_path}: cannot read test list: {exc.strerror or exc}") from exc
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or "url" not in rows[0]:
        raise ScenarioError(f"{csv_path}: not a Citizen Lab test list (no 'url' column)")
    hosts: dict[str, tuple[str, str, set[str]]] = {}
    for i, row in enumerate(rows, start=2):
        url = (row.get("url") or "").strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ScenarioError(f"{csv_path}:{i}: not an http(s) URL: {url!r}")
        host = parts.hostname.lower()
        if host not in hosts:
            hosts[host] = (url, str(row.get("category_code") or "MISC"), set())
        hosts[host][2].add(parts.scheme)
    return [(h, u, c, s) for h, (u, c, s) in hosts.items()]


def generate_scenario(
    csv_path: str | Path,
    *,
    blocked_fraction: float = 0.3,
    mix: Mapping[str, float] | None = None,
    seed: int = 0,
    name: str | None = None,
    base: Scenario | None = None,
) -> Scenario:
    """A scenario with one site per hostname of the test list at `csv_path`.

    `blocked_fraction` of the sites (rounded) get one censor technique drawn from `mix`
    (technique -> weight) among those that apply to the site's URL schemes. `base` gives the
    probe's network, blockpage and ISP profiles (default: the built-in `iran` scenario).
    """
    if not 0.0 <= blocked_fraction <= 1.0:
        raise ScenarioError(f"blocked_fraction must be within [0, 1], got {blocked_fraction}")
    weights = dict(DEFAULT_MIX if mix is None else mix)
    unknown = sorted(set(weights) - set(TECHNIQUES))
    if unknown:
        raise ScenarioError(f"mix: unknown techniques {unknown}; known: {sorted(TECHNIQUES)}")
    if any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
        raise ScenarioError("mix: weights must be >= 0 with at least one > 0")
    if "throttle" in weights:
        raise ScenarioError("mix: throttle is not censorship; it cannot fill blocked_fraction")
    path = Path(csv_path)
    hosts = _read_hosts(path)
    if int(LAST_SITE_IP) - int(FIRST_SITE_IP) < len(hosts):
        raise ScenarioError(f"{path}: too many hosts ({len(hosts)}) for 198.18.0.0/15")
    base = base or load_scenario("iran")
    rng = random.Random(seed)
    n_blocked = round(blocked_fraction * len(hosts))
    blocked = set(rng.sample(range(len(hosts)), n_blocked))
    sites: list[Site] = []
    for i, (host, url, category, schemes) in enumerate(hosts):
        censor: tuple[Censorship, ...] = ()
        if i in blocked:
            eligible = [t for t, w in weights.items() if w > 0 and applies_to(t, schemes)]
            if not eligible:
                raise ScenarioError(f"mix: no technique applies to {host} ({sorted(schemes)})")
            technique = rng.choices(eligible, [weights[t] for t in eligible])[0]
            params = (
                {"answer": base.blockpage_ip} if technique in ("dns_hijack", "dns_inject") else {}
            )
            censor = (Censorship(technique, params),)
        site = Site(
            url=url,
            ip=str(FIRST_SITE_IP + i),
            category_code=category,
            censor=censor,
        )
        sites.append(replace(site, expect=expectation_for(site)))
    return replace(
        base,
        name=name or f"{path.stem}-generated",
        sites=tuple(sites),
        description=(
            f"Generated from {path.name}: {len(sites)} sites, {n_blocked} censored "
            f"(blocked_fraction {blocked_fraction}, seed {seed})."
        ),
    )


def scenario_to_dict(scenario: Scenario) -> dict[str, Any]:
    """The YAML form of a scenario (`parse_scenario` reads it back to an equal Scenario)."""
    sites: list[dict[str, Any]] = []
    for s in scenario.sites:
        d: dict[str, Any] = {"url": s.url, "ip": s.ip, "category_code": s.category_code}
        if s.title:
            d["title"] = s.title
        if s.server != "ok":
            d["server"] = s.server
        if s.censor:
            d["censor"] = [{"technique": c.technique, **c.params} for c in s.censor]
        if s.echo_client:
            d["echo_client"] = True
        if s.expect is not None:
            d["expect"] = {"blocking": s.expect.blocking, "accessible": s.expect.accessible}
        sites.append(d)
    return {
        "name": scenario.name,
        "description": scenario.description,
        "probe": {
            "cc": scenario.probe_cc,
            "asn": scenario.probe_asn,
            "network_name": scenario.probe_network_name,
            "public_ip": scenario.probe_public_ip,
        },
        "profiles": [
            {"name": p.name, "asn": p.asn, "network_name": p.network_name, "tls_block": p.tls_block}
            for p in scenario.profiles
        ],
        "blockpage": {"ip": scenario.blockpage_ip, "html": scenario.blockpage_html},
        "sites": sites,
    }


def scenario_to_yaml(scenario: Scenario) -> str:
    text = yaml.safe_dump(
        scenario_to_dict(scenario), allow_unicode=True, sort_keys=False, width=100
    )
    parse_scenario(yaml.safe_load(text), scenario.name)  # what we write must load back
    return text
