"""From a raw measurement to observations and an explained verdict.

Pure: no I/O. `analyze(raw, fpdb)` extracts the observations, computes the facts of the test
(from the observations and the control only: the probe's own `blocking`/`accessible` are
reported beside the verdict, never used to decide it), lets the first matching rule of
`dideban.pipeline.rules` decide, and scores each layer.

Per-layer fuzzy scores (blocked, down, ok), after ooni/data's `analysis_web_measurement`
(the shapes checked against tests/fixtures/ooni-samples/ug-analysis.sql): a layer that worked
is (0, 0, 1); one that failed for the probe while the control succeeded is "blocked" with a
weight that depends on the failure (DNS 0.9, TCP 0.75, TLS reset 0.8 / other 0.7, HTTP 0.7,
a page that differs 0.6; the rest goes to "down"); one that failed for both is (0, 1, 0); a
layer the measurement never reached is (0, 0, 0). A confirmed fingerprint makes its layer
(1, 0, 0).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from dideban.model.verdict import Observation, Verdict
from dideban.pipeline.fingerprints import FingerprintDB
from dideban.pipeline.observations import Extracted, HttpExchange, extract
from dideban.pipeline.readers import RawMeasurement
from dideban.pipeline.rules import FACT_GROUP, RULES_VERSION, decide

Triple = tuple[float, float, float]
NOT_REACHED: Triple = (0.0, 0.0, 0.0)
OK3: Triple = (0.0, 0.0, 1.0)
DOWN3: Triple = (0.0, 1.0, 0.0)
NXDOMAIN = frozenset({"dns_nxdomain_error", "dns_name_error"})
LOCAL_ROUTE_FAILURES = frozenset({"host_unreachable", "network_unreachable"})
EPOCH = dt.datetime(1970, 1, 1)


def blocked(weight: float) -> Triple:
    return (weight, round(1.0 - weight, 6), 0.0)


_BLOCKED_WEIGHT = {"dns": 0.9, "tcp": 0.75, "http": 0.7}


def layer_scores(layer: str, probe_failure: str | None, control_ok: bool | None) -> Triple:
    """(blocked, down, ok) of one layer from the probe's failure and whether the control
    succeeded at the same step (None: no control)."""
    if probe_failure is None:
        return OK3
    if layer == "tcp" and probe_failure in LOCAL_ROUTE_FAILURES:
        # No route from the probe (typically an IPv6 address on an IPv4-only network):
        # ooni/data scores the layer ok, and so do we.
        return OK3
    if control_ok is False:
        return DOWN3
    weight = _BLOCKED_WEIGHT.get(layer, 0.7)
    if layer == "tls":
        weight = 0.8 if probe_failure == "connection_reset" else 0.7
    if control_ok is None:
        weight = 0.5
    return blocked(weight)


@dataclass
class Analysis:
    verdict: Verdict
    observations: list[Observation]
    facts: set[str] = field(default_factory=set)


# A dotted quad exactly as `ipaddress` accepts one: ASCII digits, each octet 0-255 with no
# leading zero.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def _is_ip(text: Any) -> bool:
    if text.__class__ is str and _IPV4.fullmatch(text) is not None:
        return True
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _bogon(ip: str) -> bool:
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return (
        a.is_private or a.is_loopback or a.is_link_local or a.is_reserved or a.is_unspecified
    ) and not (isinstance(a, ipaddress.IPv4Address) and a in _LAB_OK)


# Answers repeat a lot (block page addresses, CDNs): remember the last addresses seen
# (`ipaddress`'s is_private walks a list of networks per call).
_BOGON_CACHE: dict[str, bool] = {}
_BOGON_CACHE_MAX = 65536


def is_bogon(ip: str) -> bool:
    known = _BOGON_CACHE.get(ip)
    if known is None:
        if len(_BOGON_CACHE) >= _BOGON_CACHE_MAX:
            _BOGON_CACHE.clear()
        known = _BOGON_CACHE[ip] = _bogon(ip)
    return known


# Documentation ranges count as routable here: the censorship lab addresses its "Internet"
# from them (ipaddress calls them private).
_LAB_OK = ipaddress.ip_network("198.18.0.0/15")


def _d(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _time(doc: dict[str, Any]) -> dt.datetime:
    text = doc.get("measurement_start_time")
    if isinstance(text, str):
        # OONI writes "YYYY-mm-dd HH:MM:SS" (UTC); some tools add "T"/"Z".
        try:
            when = dt.datetime.fromisoformat(text.removesuffix("Z"))
        except ValueError:
            return EPOCH
        if when.tzinfo is not None:
            when = when.astimezone(dt.UTC).replace(tzinfo=None)
        return when
    return EPOCH


# -- web_connectivity ------------------------------------------------------------------------


@dataclass
class _WC:
    facts: set[str]
    scores: dict[str, Triple]


_COMMON_HEADERS = frozenset({
    "date", "content-type", "server", "cache-control", "vary", "set-cookie", "location",
    "expires", "x-powered-by", "content-encoding", "last-modified", "accept-ranges",
    "pragma", "x-frame-options", "etag", "x-content-type-options", "age", "via",
    "p3p", "x-xss-protection", "content-language", "cf-ray", "strict-transport-security",
    "link", "x-varnish", "connection", "content-length", "transfer-encoding",
    "keep-alive",
})  # fmt: skip


def _uncommon(headers: list[tuple[str, str]] | dict[str, Any]) -> set[str]:
    names = headers.keys() if isinstance(headers, dict) else [k for k, _ in headers]
    return {n.lower() for n in names if isinstance(n, str)} - _COMMON_HEADERS


def _same_page(final: HttpExchange, ctrl: dict[str, Any]) -> bool:
    """OONI's classic comparison: same status code, and a matching body length (proportion
    above 0.7), uncommon headers or title."""
    c_code = ctrl.get("status_code")
    if not isinstance(c_code, int) or final.status_code != c_code:
        return False
    c_len = ctrl.get("body_length")
    body_match = False
    if isinstance(c_len, int) and c_len > 0 and final.body_length is not None:
        lo, hi = sorted((c_len, final.body_length))
        body_match = hi > 0 and lo / hi > 0.7
    elif final.body_length is None:
        body_match = False
    c_headers = _d(ctrl.get("headers"))
    p_unc, c_unc = _uncommon(final.headers), _uncommon(c_headers)
    headers_match = bool(p_unc & c_unc) or (not p_unc and not c_unc and bool(c_headers))
    c_title = ctrl.get("title")
    title_match = False
    if isinstance(c_title, str) and c_title and final.title:
        words = [w for w in c_title.split() if len(w) >= 5]
        title_match = bool(words) and words[0] in final.title.split()
    return body_match or headers_match or title_match


def _web_connectivity(doc: dict[str, Any], tk: dict[str, Any], ex: Extracted, cc: str) -> _WC:
    facts: set[str] = set()
    scores = {k: NOT_REACHED for k in ("dns", "tcp", "tls", "http")}
    url = doc.get("input") if isinstance(doc.get("input"), str) else None
    reqs = ex.http
    if url is None and reqs and reqs[-1].url:
        url = reqs[-1].url
    parts = urlsplit(url or "")
    host = parts.hostname or ""
    https = parts.scheme == "https"
    control = _d(tk.get("control"))
    c_dns, c_http = _d(control.get("dns")), _d(control.get("http_request"))
    c_tcp, c_tls = _d(control.get("tcp_connect")), _d(control.get("tls_handshake"))
    c_http_ok = (
        bool(c_http) and c_http.get("failure") is None and (c_http.get("status_code") or 0) > 0
    )
    control_usable = tk.get("control_failure") is None and bool(control)

    fp_http = any(m.confirmed for m in ex.matches if m.fingerprint.location != "dns")
    fp_dns = any(m.confirmed for m in ex.matches if m.fingerprint.location == "dns")
    if fp_http:
        facts.add("fp_http_confirmed")
    if fp_dns:
        facts.add("fp_dns_confirmed")

    # DNS
    dns_obs = ex.dns
    own = [o for o in dns_obs if o.hostname == host] or dns_obs
    p_addrs = {o.ip for o in own if o.ip}
    p_fail = tk.get("dns_experiment_failure")
    if not isinstance(p_fail, str):
        p_fail = None
    if p_fail is None and own and not p_addrs:
        p_fail = next((o.failure for o in own if o.failure), None)
    c_fail = c_dns.get("failure") if isinstance(c_dns.get("failure"), str) else None
    c_addrs = {a for a in c_dns.get("addrs") or [] if _is_ip(a)}
    c_dns_known = (
        control_usable and bool(c_dns) and (c_fail is not None or c_dns.get("addrs") is not None)
    )
    dns_inconsistent = False
    if p_fail is not None:
        if c_dns_known and c_fail is None:
            dns_inconsistent = True
            scores["dns"] = blocked(0.9)
        elif c_dns_known and (c_fail in NXDOMAIN) == (p_fail in NXDOMAIN):
            scores["dns"] = DOWN3
        else:
            scores["dns"] = layer_scores("dns", p_fail, None)
    elif p_addrs:
        scores["dns"] = OK3
        if fp_dns or (any(is_bogon(a) for a in p_addrs) and not any(is_bogon(a) for a in c_addrs)):
            dns_inconsistent = True
            scores["dns"] = (1.0, 0.0, 0.0)
        elif (c_dns_known and c_fail in NXDOMAIN) or (
            c_dns_known
            and not (p_addrs & c_addrs)
            and not _vouched(p_addrs, ex, c_tcp, c_tls, c_addrs, control)
        ):
            dns_inconsistent = True
            scores["dns"] = blocked(0.8)
    if dns_inconsistent:
        facts.add("dns_inconsistent")

    # TCP
    tcp = [o for o in ex.tcp if o.failure not in LOCAL_ROUTE_FAILURES]
    if tcp:
        failed = [o for o in tcp if o.failure]
        if len(failed) == len(tcp):
            ctrl_reached = any(_d(v).get("status") is True for v in c_tcp.values()) or c_http_ok
            scores["tcp"] = layer_scores(
                "tcp", failed[0].failure, ctrl_reached if control_usable else None
            )
            if ctrl_reached and control_usable and not dns_inconsistent:
                facts.add("tcp_all_failed")
        else:
            scores["tcp"] = OK3

    # TLS
    tls = ex.tls
    final = reqs[0] if reqs else None
    http_fail = tk.get("http_experiment_failure")
    if not isinstance(http_fail, str):
        http_fail = final.failure if final else None
    ctrl_tls_ok = any(_d(v).get("status") is True for v in c_tls.values()) or (c_http_ok and https)
    if tls:
        failed = [o for o in tls if o.failure]
        if failed and len(failed) == len(tls):
            scores["tls"] = layer_scores(
                "tls", failed[0].failure, ctrl_tls_ok if control_usable else None
            )
            if ctrl_tls_ok and control_usable:
                facts.add("tls_failed")
        else:
            scores["tls"] = OK3
    elif (
        https
        and http_fail
        and (http_fail.startswith("ssl_") or http_fail == "connection_reset")
        and scores["tcp"] == OK3
    ):
        scores["tls"] = layer_scores("tls", http_fail, c_http_ok if control_usable else None)
        if c_http_ok and control_usable:
            facts.add("tls_failed")
    elif https and scores["tcp"] == OK3 and final and final.status_code:
        scores["tls"] = OK3

    # HTTP
    accessible = False
    if final is not None and final.status_code and not final.failure and http_fail is None:
        if c_http_ok and _same_page(final, c_http):
            accessible = True
            scores["http"] = OK3
        elif c_http_ok:
            facts.add("http_diff")
            scores["http"] = blocked(0.6)
        else:
            scores["http"] = OK3
    else:
        facts.add("probe_http_unsuccessful")
        if http_fail is not None:
            scores["http"] = layer_scores("http", http_fail, c_http_ok if control_usable else None)
            if c_http_ok and control_usable:
                facts.add("http_failed")
    if fp_http:
        scores["http"] = (1.0, 0.0, 0.0)
    if accessible:
        facts.add("http_accessible")
    else:
        facts.add("not_http_accessible")
    if not control_usable:
        facts.add("control_unavailable")
    elif not c_http_ok:
        facts.add("control_http_failed")
    return _WC(facts, scores)


def _vouched(
    p_addrs: set[str],
    ex: Extracted,
    c_tcp: dict[str, Any],
    c_tls: dict[str, Any],
    c_addrs: set[str],
    control: dict[str, Any],
) -> bool:
    """Addresses the control cannot match may still be the site's (CDNs answer differently
    per country). They are vouched for when the probe completed a TLS handshake with one
    (certificate checked), when they share an ASN with the control's (newer controls carry
    `ip_info`), or when the control, connecting to them itself, saw the same TLS outcome as
    with its own addresses (the iCloud Private Relay case)."""
    if any(o.ip in p_addrs and o.failure is None for o in ex.tls):
        return True
    info = _d(control.get("ip_info"))
    c_asns = {_d(info.get(a)).get("asn") for a in c_addrs} - {None, 0}
    p_asns = {_d(info.get(a)).get("asn") for a in p_addrs} - {None, 0}
    if c_asns & p_asns:
        return True

    def tls_outcome(ip: str) -> set[Any]:
        return {
            (_d(v).get("status"), _d(v).get("failure"))
            for k, v in c_tls.items()
            if isinstance(k, str) and k.rsplit(":", 1)[0].strip("[]") == ip
        }

    own = set().union(*(tls_outcome(a) for a in c_addrs)) if c_addrs else set()
    for ip in p_addrs:
        reached = any(
            _d(v).get("status") is True
            for k, v in c_tcp.items()
            if isinstance(k, str) and k.rsplit(":", 1)[0].strip("[]") == ip
        )
        if reached and own and tls_outcome(ip) and tls_outcome(ip) <= own:
            return True
    return False


# -- other tests -----------------------------------------------------------------------------


def _im(name: str, tk: dict[str, Any], ex: Extracted) -> tuple[set[str], dict[str, Triple]]:
    facts: set[str] = set()
    scores = {k: NOT_REACHED for k in ("dns", "tcp", "tls", "http")}
    tls_fail = [o.failure for o in ex.tls if o.failure]
    http_fail = [(h.url or "", h.failure) for h in ex.http if h.failure]
    if "ssl_unknown_authority" in tls_fail:
        facts.add("tls_unknown_authority")
    if (
        any(f == "android_dns_cache_no_data" for _, f in http_fail)
        or tk.get("signal_backend_failure") == "android_dns_cache_no_data"
    ):
        facts.add("android_dns_no_data")
    # Facts from the recorded steps, ignoring web front ends (web.whatsapp.com,
    # web.telegram.org) whose checks OONI's fastpath does not score.
    api_fail = [(u, f) for u, f in http_fail if "web." not in u]
    if name == "whatsapp" and any("v.whatsapp.net" in u for u, _ in api_fail):
        facts.add("registration_failed")
    dns = ex.dns
    if dns:
        # Failed lookups only: services publish loopback answers on purpose
        # (uptime.signal.org is 127.0.0.1).
        bad = [o for o in dns if o.failure]
        hosts = {o.hostname for o in dns}
        ok_hosts = {o.hostname for o in dns if o.ip}
        scores["dns"] = OK3 if not bad else blocked(0.9)
        if hosts - ok_hosts:
            facts.add("dns_failed")
    tcp = ex.tcp
    if tcp:
        failed = [o for o in tcp if o.failure]
        scores["tcp"] = OK3 if not failed else blocked(0.75 * len(failed) / len(tcp))
        by_port: dict[int | None, list[Observation]] = {}
        for o in tcp:
            by_port.setdefault(o.port, []).append(o)
        if failed and (
            len(failed) == len(tcp)
            or (name == "telegram" and any(all(x.failure for x in g) for g in by_port.values()))
        ):
            facts.add("tcp_blocked")
    tls = ex.tls
    if tls:
        scores["tls"] = OK3 if not tls_fail else layer_scores("tls", tls_fail[0], None)
        if tls_fail and len(tls_fail) == len(tls):
            facts.add("tls_blocked")
    if ex.http:
        scores["http"] = OK3 if not api_fail else layer_scores("http", api_fail[0][1], None)
        if api_fail and len(api_fail) == len([h for h in ex.http if "web." not in (h.url or "")]):
            facts.add("http_blocked")
    return facts, scores


def _tor(tk: dict[str, Any]) -> set[str]:
    targets = tk.get("targets")
    if not isinstance(targets, dict) or not targets:
        return {"targets_malformed"}
    failed = sum(1 for t in targets.values() if _d(t).get("failure"))
    return {"most_targets_failed"} if failed * 2 > len(targets) else set()


def _torboot(doc: dict[str, Any], tk: dict[str, Any]) -> set[str]:
    failure = tk.get("failure")
    if not failure and tk.get("success") is not False:
        return set()
    version = str(doc.get("test_version") or "0")
    major_minor = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if tk.get("tor_progress") == 0 and major_minor >= (0, 4):
        return {"bootstrap_never_started"}
    return {"bootstrap_failed"}


def _hhfm(tk: dict[str, Any], ex: Extracted) -> set[str]:
    facts: set[str] = set()
    tampering = tk.get("tampering")
    if tampering is True or (
        isinstance(tampering, dict)
        and any(v is True or (isinstance(v, list) and v) for v in tampering.values())
    ):
        facts.add("tampering")
    if ex.http and all(h.failure for h in ex.http):
        facts.add("all_requests_failed")
    if not ex.http and tk.get("failure"):
        facts.add("all_requests_failed")
    return facts


def _dnscheck(tk: dict[str, Any]) -> set[str]:
    if tk.get("bootstrap_failure"):
        return {"bootstrap_failed"}
    lookups = _d(tk.get("lookups"))
    if lookups and all(_d(v).get("failure") for v in lookups.values()):
        return {"lookups_all_failed"}
    return set()


def _stun(tk: dict[str, Any], ex: Extracted) -> set[str]:
    if not tk.get("failure"):
        return set()
    if any(o.failure for o in ex.dns):
        return {"dns_failed"}
    return {"failed"}


# -- entry point -----------------------------------------------------------------------------


def analyze(raw: RawMeasurement, fpdb: FingerprintDB) -> Analysis:
    doc = raw.doc
    tk_raw = doc.get("test_keys")
    tk = tk_raw if isinstance(tk_raw, dict) else {}
    test_name = str(doc.get("test_name") or "unknown")
    cc = str(doc.get("probe_cc") or "ZZ")
    ex = extract(tk, raw.uid, cc, fpdb)
    scores = {k: NOT_REACHED for k in ("dns", "tcp", "tls", "http")}
    group = FACT_GROUP.get(test_name, "generic")
    facts: set[str]
    if tk_raw is None:
        facts = {"no_test_keys"}
    elif group == "web_connectivity":
        wc = _web_connectivity(doc, tk, ex, cc)
        facts, scores = wc.facts, wc.scores
    elif group == "im":
        facts, scores = _im(test_name, tk, ex)
    elif group == "tor":
        facts = _tor(tk)
    elif group == "torboot":
        facts = _torboot(doc, tk)
    elif group in ("hhfm", "hirl"):
        facts = _hhfm(tk, ex)
    elif group == "dnscheck":
        facts = _dnscheck(tk)
    elif group == "stun":
        facts = _stun(tk, ex)
    else:
        facts = set()
    rule = decide(test_name if group != "generic" else "*", facts)
    out = rule.outcome
    fp_names = sorted({m.fingerprint.name for m in ex.matches})
    confirmed = out.confirmed or any(m.confirmed for m in ex.matches)
    inp = doc.get("input")
    inp_s = inp if isinstance(inp, str) else None
    domain = urlsplit(inp_s).hostname if inp_s and "://" in inp_s else inp_s
    probe_blocking_raw = tk.get("blocking")
    probe_blocking = (
        None
        if probe_blocking_raw is None or "blocking" not in tk
        else ("false" if probe_blocking_raw is False else str(probe_blocking_raw))
    )
    probe_accessible = tk.get("accessible") if isinstance(tk.get("accessible"), bool) else None
    anomaly = out.anomaly
    disagrees = False
    if probe_blocking is not None and not out.failure:
        probe_anomaly = probe_blocking != "false"
        disagrees = probe_anomaly != anomaly or (
            anomaly and probe_anomaly and probe_blocking != out.blocking_type
        )
    asn = doc.get("probe_asn")
    v = Verdict(
        measurement_uid=raw.uid,
        report_id=str(doc.get("report_id") or ""),
        input=inp_s,
        domain=domain,
        probe_cc=cc,
        probe_asn=str(asn) if asn is not None else "AS0",
        test_name=test_name,
        measurement_start_time=_time(doc),
        category_code=None,
        anomaly=anomaly,
        confirmed=confirmed and anomaly,
        failure=out.failure,
        blocking_type=out.blocking_type if anomaly else None,
        dns_blocked=scores["dns"][0],
        dns_down=scores["dns"][1],
        dns_ok=scores["dns"][2],
        tcp_blocked=scores["tcp"][0],
        tcp_down=scores["tcp"][1],
        tcp_ok=scores["tcp"][2],
        tls_blocked=scores["tls"][0],
        tls_down=scores["tls"][1],
        tls_ok=scores["tls"][2],
        http_blocked=scores["http"][0],
        http_down=scores["http"][1],
        http_ok=scores["http"][2],
        fingerprints=fp_names,
        rules=[rule.id],
        probe_blocking=probe_blocking,
        probe_accessible=probe_accessible,
        disagrees_with_probe=disagrees,
        raw_path=raw.path,
        raw_line=raw.line,
        rules_version=RULES_VERSION,
    )
    return Analysis(v, ex.observations, facts)
