"""The web_connectivity verdict: a pure function of recorded test_keys (with `control`).

This is OONI's "classic" analysis (spec ts-017; probe-cli's webconnectivity v0.4 summary, itself
adapted from Measurement Kit), re-implemented from the spec's description. It reads only what a
measurement records, so it re-analyses OONI's own measurements as well as ours:

  probe data:   `queries` (the system resolver's answers: engine system/getaddrinfo or absent),
                `dns_experiment_failure`, `tcp_connect`, `requests` (newest first),
                `http_experiment_failure`
  control data: `control.dns`, `control.tcp_connect`, `control.tls_handshake`,
                `control.http_request`, `control.ip_info` (ASNs), `control_failure`

The decision, in order (first rule that applies wins; the rule's id is kept in
`x_analysis_rule` so every verdict can be explained):

  https_ok        the first request is https and succeeded -> accessible (a TLS-authenticated
                  page is the real site or a compromised CA; OONI assumes the former)
  no_control      the control request failed -> blocking null, accessible null
  nxdomain_both   probe and control both say NXDOMAIN -> the domain does not exist
  dns             DNS inconsistent with the control -> "dns"
  tcp_down        every probe TCP connect failed and so did the control's -> site down (*)
  tcp_ip          every probe TCP connect failed, DNS consistent -> "tcp_ip"
  http_down       both the probe's and the control's HTTP fetches failed -> site down (*)
  control_http    only the control's HTTP fetch failed -> null / null
  http_failure    the probe's HTTP fetch failed -> "http-failure" ("dns" when a redirect
                  hop did not resolve)
  http_ok         status codes match and body length, headers or title match -> accessible
  http_diff       otherwise -> "http-diff"

(*) Dideban's additions, ts-017's "expected failure": the classic algorithm calls a site that
refuses everyone "tcp_ip" and a site with a broken certificate "null". Dideban calls both
"down": blocking false, accessible false (as it also does for NXDOMAIN at both ends, where
Measurement Kit said accessible=true). Censorship is only claimed when the control succeeded
where the probe failed.
"""

from __future__ import annotations

import base64
import binascii
import html
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from dideban.model import failures

CONSISTENT: Final = "consistent"
INCONSISTENT: Final = "inconsistent"

# The control reports NXDOMAIN with this legacy string (OONI's TH protocol).
CONTROL_NXDOMAIN: Final = "dns_name_error"

# Body lengths closer than this ratio "match" (ts-017, Measurement Kit).
BODY_PROPORTION_THRESHOLD: Final = 0.7
# Title words shorter than this are ignored: too common to identify a page.
TITLE_MIN_WORD_LENGTH: Final = 5

# x_blocking_flags, the same bits as OONI's webconnectivity LTE where they overlap.
FLAG_DNS: Final = 1
FLAG_TCP_IP: Final = 2
FLAG_TLS: Final = 4
FLAG_HTTP_FAILURE: Final = 8
FLAG_HTTP_DIFF: Final = 16
FLAG_SUCCESS: Final = 32
FLAG_SITE_DOWN: Final = 64  # dideban: probe and control failed alike

# Header names nearly every server sends: their presence says nothing about the page.
COMMON_HEADERS: Final[frozenset[str]] = frozenset(
    {
        "date",
        "content-type",
        "server",
        "cache-control",
        "vary",
        "set-cookie",
        "location",
        "expires",
        "x-powered-by",
        "content-encoding",
        "last-modified",
        "accept-ranges",
        "pragma",
        "x-frame-options",
        "etag",
        "x-content-type-options",
        "age",
        "via",
        "p3p",
        "x-xss-protection",
        "content-language",
        "cf-ray",
        "strict-transport-security",
        "link",
        "x-varnish",
    }
)

CLASSIC_DNS_ENGINES: Final[frozenset[str | None]] = frozenset({None, "", "system", "getaddrinfo"})

_TITLE_RE = re.compile(r"<title[^>]*>([^<]{1,512})</title", re.IGNORECASE)


# --- small pure helpers -------------------------------------------------------------------


def http_title(body: str) -> str:
    """The page title (first <title> element, entities decoded, whitespace collapsed)."""
    m = _TITLE_RE.search(body)
    if m is None:
        return ""
    return " ".join(html.unescape(m.group(1)).split())


def title_first_word(title: str) -> str | None:
    """The first word of at least TITLE_MIN_WORD_LENGTH characters, lower-cased."""
    for word in title.split():
        if len(word) >= TITLE_MIN_WORD_LENGTH:
            return word.lower()
    return None


def title_match(probe_title: str, control_title: str) -> bool | None:
    """ts-017: the titles match when their first long words are equal; None if either has none."""
    ours = title_first_word(probe_title)
    theirs = title_first_word(control_title)
    if ours is None or theirs is None:
        return None
    return ours == theirs


def body_proportion(probe_length: int, control_length: int) -> tuple[bool | None, float | None]:
    """(body_length_match, body_proportion): the smaller length over the larger."""
    if probe_length <= 0 or control_length <= 0:
        return None, None
    proportion = min(probe_length, control_length) / max(probe_length, control_length)
    return proportion > BODY_PROPORTION_THRESHOLD, proportion


def headers_match(probe_headers: Iterable[str], control_headers: Iterable[str]) -> bool:
    """Same header names, or at least one uncommon header name in common."""
    ours = {h.lower() for h in probe_headers}
    theirs = {h.lower() for h in control_headers}
    if ours == theirs:
        return True
    return bool((ours - COMMON_HEADERS) & (theirs - COMMON_HEADERS))


def status_code_match(probe_code: int, control_code: int) -> bool | None:
    if probe_code <= 0 or control_code <= 0:
        return None
    if probe_code == control_code:
        return True
    # A 5xx at the control says the helper could not fetch the page: no comparison.
    if control_code // 100 == 5:
        return None
    return False


def is_bogon(ip: str) -> bool:
    """Private, loopback, link-local, reserved, ... : an address no public site has."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return not addr.is_global


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def dns_consistency(
    hostname: str,
    probe_addrs: Iterable[str],
    probe_failure: str | None,
    control_addrs: Iterable[str],
    control_failure: str | None,
    asn_of: Mapping[str, int] | None = None,
) -> str:
    """Compare the probe's resolution with the control's (ts-017 dns_consistency).

    An IP literal needs no resolution (consistent). Both failing with NXDOMAIN is consistent;
    any other failure on either side is inconsistent. A bogon answered only to the probe (the
    blockpage address 10.10.34.35, say) is inconsistent. Otherwise one address in common, or
    one ASN in common where ASNs are known (0 = unknown), is consistent.
    """
    if _ip(hostname) is not None:
        return CONSISTENT
    if probe_failure is not None or control_failure is not None:
        if probe_failure == failures.DNS_NXDOMAIN_ERROR and control_failure in (
            CONTROL_NXDOMAIN,
            failures.DNS_NXDOMAIN_ERROR,
        ):
            return CONSISTENT
        return INCONSISTENT
    ours = {ip for ip in (_ip(a) for a in probe_addrs) if ip is not None}
    theirs = {ip for ip in (_ip(a) for a in control_addrs) if ip is not None}
    if any(is_bogon(ip) for ip in ours - theirs):
        return INCONSISTENT
    if ours & theirs:
        return CONSISTENT
    if asn_of:
        our_asns = {asn_of.get(ip, 0) for ip in ours} - {0}
        their_asns = {asn_of.get(ip, 0) for ip in theirs} - {0}
        if our_asns & their_asns:
            return CONSISTENT
    return INCONSISTENT


# --- reading recorded data ----------------------------------------------------------------


def _body_bytes(body: Any) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode("utf-8", "surrogateescape")
    if isinstance(body, Mapping) and body.get("format") == "base64":
        data = str(body.get("data") or "")
        try:
            return base64.b64decode(data)
        except (binascii.Error, ValueError):
            # OONI has published malformed base64 bodies: keep their size, not their bytes.
            return data.encode("ascii", "replace")
    return None


def _header_names(response: Mapping[str, Any]) -> list[str]:
    headers_list = response.get("headers_list")
    if isinstance(headers_list, list) and headers_list:
        return [str(item[0]) for item in headers_list if isinstance(item, list | tuple) and item]
    headers = response.get("headers")
    if isinstance(headers, Mapping):
        return [str(k) for k in headers]
    return []


@dataclass(frozen=True)
class ProbeObservations:
    """What the classic analysis needs from the probe's records."""

    hostname: str
    dns_addrs: tuple[str, ...]
    dns_failure: str | None
    tcp_attempts: int
    tcp_successes: int
    tcp_endpoints: tuple[str, ...]
    request_count: int
    first_url: str | None
    http_failure: str | None
    status_code: int
    body: bytes | None
    body_truncated: bool
    header_names: tuple[str, ...]


def probe_observations(url: str, test_keys: Mapping[str, Any]) -> ProbeObservations:
    hostname = urlsplit(url).hostname or ""
    addrs: list[str] = []
    for query in test_keys.get("queries") or []:
        if query.get("engine") not in CLASSIC_DNS_ENGINES:
            continue
        for answer in query.get("answers") or []:
            ip = answer.get("ipv4") or answer.get("ipv6")
            if ip and ip not in addrs:
                addrs.append(str(ip))
    classic_ips = set(addrs)
    attempts = successes = 0
    endpoints: list[str] = []
    for entry in test_keys.get("tcp_connect") or []:
        ip = str(entry.get("ip", ""))
        # Classic: only connects to addresses the probe itself resolved (connects to addresses
        # only the control found are extra data, not the probe's view).
        if _ip(hostname) is None and ip not in classic_ips:
            continue
        attempts += 1
        status = entry.get("status") or {}
        if status.get("success") or (status.get("failure") is None and "success" not in status):
            successes += 1
        port = entry.get("port")
        endpoints.append(f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}")
    requests = [r for r in (test_keys.get("requests") or []) if isinstance(r, Mapping)]
    first = requests[0] if requests else {}
    request = first.get("request") or {}
    response = first.get("response") or {}
    http_failure = first.get("failure") if requests else test_keys.get("http_experiment_failure")
    code = response.get("code")
    return ProbeObservations(
        hostname=hostname,
        dns_addrs=tuple(addrs),
        dns_failure=test_keys.get("dns_experiment_failure"),
        tcp_attempts=attempts,
        tcp_successes=successes,
        tcp_endpoints=tuple(endpoints),
        request_count=len(requests),
        first_url=request.get("url"),
        http_failure=http_failure,
        status_code=int(code) if isinstance(code, int | float) else 0,
        body=_body_bytes(response.get("body")),
        body_truncated=bool(response.get("body_is_truncated")),
        header_names=tuple(_header_names(response)),
    )


def _control_asns(control: Mapping[str, Any]) -> dict[str, int]:
    info = control.get("ip_info") or {}
    out: dict[str, int] = {}
    if isinstance(info, Mapping):
        for ip, item in info.items():
            if isinstance(item, Mapping) and isinstance(item.get("asn"), int):
                out[str(ip)] = int(item["asn"])
    return out


# --- the decision -------------------------------------------------------------------------


def analyze(url: str, test_keys: Mapping[str, Any]) -> dict[str, Any]:
    """The analysis keys of web_connectivity from recorded test_keys (see module doc)."""
    obs = probe_observations(url, test_keys)
    control_failure = test_keys.get("control_failure")
    control = test_keys.get("control") or {}
    out: dict[str, Any] = {
        "dns_consistency": None,
        "body_length_match": None,
        "body_proportion": None,
        "status_code_match": None,
        "headers_match": None,
        "title_match": None,
        "blocking": None,
        "accessible": None,
        "x_blocking_flags": 0,
        "x_analysis_rule": "",
    }

    def verdict(
        rule: str, blocking: str | bool | None, accessible: bool | None, flags: int
    ) -> None:
        out["x_analysis_rule"] = rule
        out["blocking"] = False if accessible else blocking
        out["accessible"] = accessible
        out["x_blocking_flags"] = flags

    # https_ok comes first in the classic algorithm and does not need the control.
    if (
        obs.request_count
        and obs.http_failure is None
        and (obs.first_url or "").startswith("https://")
    ):
        if control_failure is None and control:
            _fill_consistency_and_http(out, obs, control)
        verdict("https_ok", False, True, FLAG_SUCCESS)
        return out
    if control_failure is not None or not control:
        verdict("no_control", None, None, 0)
        return out
    _fill_consistency_and_http(out, obs, control)
    consistency = out["dns_consistency"]
    http_control = control.get("http_request") or {}
    control_http_failure = http_control.get("failure")
    if obs.dns_failure == failures.DNS_NXDOMAIN_ERROR and consistency == CONSISTENT:
        verdict("nxdomain_both", False, False, FLAG_SITE_DOWN)
        return out
    if consistency == INCONSISTENT:
        verdict("dns", "dns", False, FLAG_DNS)
        return out
    if obs.tcp_attempts > 0 and obs.tcp_successes == 0:
        if _control_tcp_all_failed(control, obs.tcp_endpoints):
            verdict("tcp_down", False, False, FLAG_SITE_DOWN)
        else:
            verdict("tcp_ip", "tcp_ip", False, FLAG_TCP_IP)
        return out
    if control_http_failure is not None:
        if obs.http_failure is not None:
            verdict("http_down", False, False, FLAG_SITE_DOWN)
        else:
            verdict("control_http", None, None, 0)
        return out
    if obs.http_failure is not None:
        if obs.http_failure == failures.DNS_NXDOMAIN_ERROR:
            # DNS was consistent for the input's domain: a later hop of the redirect chain
            # did not resolve.
            verdict("http_failure_dns", "dns", False, FLAG_DNS)
        else:
            verdict("http_failure", "http-failure", False, FLAG_HTTP_FAILURE)
        return out
    if out["status_code_match"] and (
        out["body_length_match"] or out["headers_match"] or out["title_match"]
    ):
        verdict("http_ok", False, True, FLAG_SUCCESS)
        return out
    verdict("http_diff", "http-diff", False, FLAG_HTTP_DIFF)
    return out


def _fill_consistency_and_http(
    out: dict[str, Any], obs: ProbeObservations, control: Mapping[str, Any]
) -> None:
    dns = control.get("dns") or {}
    out["dns_consistency"] = dns_consistency(
        obs.hostname,
        obs.dns_addrs,
        obs.dns_failure,
        [str(a) for a in (dns.get("addrs") or [])],
        dns.get("failure"),
        _control_asns(control),
    )
    http_control = control.get("http_request") or {}
    control_code = int(http_control.get("status_code") or 0)
    control_length = int(http_control.get("body_length") or 0)
    if obs.request_count == 0 or obs.status_code <= 0:
        return
    if obs.body is not None and not obs.body_truncated:
        match, proportion = body_proportion(len(obs.body), control_length)
        out["body_length_match"], out["body_proportion"] = match, proportion
    out["status_code_match"] = status_code_match(obs.status_code, control_code)
    if control_code > 0:
        control_headers = http_control.get("headers") or {}
        out["headers_match"] = headers_match(obs.header_names, control_headers)
        if obs.body is not None and not obs.body_truncated:
            probe_title = http_title(obs.body.decode("utf-8", "replace"))
            out["title_match"] = title_match(probe_title, str(http_control.get("title") or ""))


def _control_tcp_all_failed(control: Mapping[str, Any], endpoints: Iterable[str]) -> bool:
    """True when the control tried every endpoint the probe tried and failed on each."""
    tcp = control.get("tcp_connect") or {}
    if not isinstance(tcp, Mapping):
        return False
    seen = False
    for endpoint in endpoints:
        entry = tcp.get(endpoint)
        if not isinstance(entry, Mapping):
            return False
        seen = True
        if entry.get("status") or entry.get("failure") is None:
            return False
    return seen
