# cython: annotation_typing=False, nonecheck=True
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from dideban.model.verdict import Observation, Verdict
from dideban.pipeline._native import SlotMaker, check_layouts, decode_pruned, decode_raw, ooni_time
from dideban.pipeline.fields import CONTROL_SECTIONS, KEYS
from dideban.pipeline.fingerprints import FingerprintDB, Match
from dideban.pipeline.observations import Extracted, HttpExchange, extract
from dideban.pipeline.readers import RawMeasurement
from dideban.pipeline.rules import ANALYSIS_FAILED, FACT_GROUP, RULES_VERSION, decision

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
# The scores of each weight `layer_scores` gives.
_BLOCKED_AT = {w: blocked(w) for w in (*_BLOCKED_WEIGHT.values(), 0.8, 0.5)}


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
    return _BLOCKED_AT[weight]  # (`round` in `blocked` formats the float: made once here)


@dataclass(slots=True)
class Analysis:
    verdict: Verdict
    observations: list[Observation]
    facts: set[str] = field(default_factory=set)
    # Why the analysis failed (an exception: a bug in the pipeline), or None. The verdict then
    # is a failure decided by rules.ANALYSIS_FAILED, with no observations: the measurement
    # is still stored, and `dideban reprocess` analyses it again once the bug is fixed.
    error: str | None = None


# A dotted quad exactly as `ipaddress` accepts one: ASCII digits, each octet 0-255 with no
# leading zero.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def _is_ip(text: Any) -> bool:
    if type(text) is str and _IPV4.fullmatch(text) is not None:
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


# Pure functions of short strings that repeat from one measurement to the next (answers:
# block page addresses, CDNs; test lists of a few thousand URLs) remember their results
# (`ipaddress`'s is_private, for one, walks a list of networks per call), up to _CACHE_MAX
# of them each, then start again. Their results are immutable, so verdicts may share them.
# A dict per function, read by `_remember`: compiled, the analysis calls it as a C function
# (analysis.pxd), where an lru_cache wrapper costs a Python call with its tuple of arguments.
_CACHE_MAX = 65536
_MISSING = object()


def _remember(table: dict[Any, Any], key: Any, fn: Callable[[Any], Any]) -> Any:
    """`fn(key)`, from `table` once computed."""
    value = table.get(key, _MISSING)
    if value is _MISSING:
        value = fn(key)
        if len(table) >= _CACHE_MAX:
            table.clear()
        table[key] = value
    return value


_BOGONS: dict[str, bool] = {}
_IPS: dict[Any, bool] = {}


def is_bogon(ip: str) -> bool:
    """Whether `ip` is an address no public host has (private, loopback, link-local,
    reserved, unspecified), the lab's 198.18.0.0/15 excepted; False for a text that is not an
    address."""
    return _remember(_BOGONS, ip, _bogon)  # type: ignore[no-any-return]


def _is_ip_text(text: Any) -> bool:
    return _remember(_IPS, text, _is_ip)  # type: ignore[no-any-return]


def _any_bogon(addrs: set[str]) -> bool:
    # A loop, not any(...): a generator is a closure, which a cpdef function cannot hold.
    for a in addrs:  # noqa: SIM110
        if is_bogon(a):
            return True
    return False


def _addresses(values: list[Any]) -> set[str]:
    """The strings of `values` that are IP addresses (each string checked once)."""
    return {a for a in values if type(a) is str and _is_ip_text(a)}


def _is_number(v: Any) -> TypeGuard[int | float]:
    """A JSON number (not a bool)."""
    return type(v) is int or type(v) is float


def _scalar(v: Any) -> Any:
    """A JSON scalar as it is; an object or array (unhashable) as None."""
    return None if isinstance(v, (dict, list)) else v


# Documentation ranges count as routable here: the censorship lab addresses its "Internet"
# from them (ipaddress calls them private).
_LAB_OK = ipaddress.ip_network("198.18.0.0/15")


def _d(v: Any) -> dict[str, Any]:
    """`v` if it is an object, else an empty dict. A value the pruned decode kept as its JSON
    text (`fields.RAW`; JSON itself has no bytes) is decoded first, as the whole document's."""
    if type(v) is bytes:
        v = decode_raw(v)
    return v if isinstance(v, dict) else _NO_DICT


# Shared stand-in for a missing or malformed control section: read, never written.
_NO_DICT: dict[str, Any] = {}


def _parse_time(text: str) -> dt.datetime:
    """OONI writes "YYYY-mm-dd HH:MM:SS" (UTC); some tools add "T"/"Z" or an offset. EPOCH
    for a time that is not one, or that is out of range once in UTC. (Not remembered: start
    times hardly repeat, and a cache miss costs more than the parse.)"""
    when = ooni_time(text)  # OONI's own format, in C; None for any other text
    if when is not None:
        return when
    try:
        when = dt.datetime.fromisoformat(text.removesuffix("Z"))
        if when.tzinfo is not None:
            when = when.astimezone(dt.UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 moved to UTC
        return EPOCH
    return when


def _time(doc: dict[str, Any]) -> dt.datetime:
    text = doc.get("measurement_start_time")
    return _parse_time(text) if isinstance(text, str) else EPOCH


_URL_PARTS: dict[str, tuple[str | None, str]] = {}


def _host_scheme(url: str) -> tuple[str | None, str]:
    """`urlsplit(url)`'s hostname and scheme; (None, "") for a URL it cannot split."""
    return _remember(_URL_PARTS, url, _split_host_scheme)  # type: ignore[no-any-return]


def _split_host_scheme(url: str) -> tuple[str | None, str]:
    try:
        parts = urlsplit(url)
        return parts.hostname, parts.scheme
    except ValueError:  # e.g. "http://[" (an unclosed IPv6 literal), a port out of range
        return None, ""


def _any_key(d: dict[str, Any], keys: frozenset[str]) -> bool:
    """Whether `d` has any of `keys` (a few: a lookup each)."""
    for k in keys:  # noqa: SIM110
        if k in d:
            return True
    return False


def _any_status_true(results: dict[str, Any]) -> bool:
    """Whether any of the control's per-address results has `"status": true`."""
    return any(isinstance(v, dict) and v.get("status") is True for v in results.values())


# -- web_connectivity ------------------------------------------------------------------------


_COMMON_HEADERS = frozenset({
    "date", "content-type", "server", "cache-control", "vary", "set-cookie", "location",
    "expires", "x-powered-by", "content-encoding", "last-modified", "accept-ranges",
    "pragma", "x-frame-options", "etag", "x-content-type-options", "age", "via",
    "p3p", "x-xss-protection", "content-language", "cf-ray", "strict-transport-security",
    "link", "x-varnish", "connection", "content-length", "transfer-encoding",
    "keep-alive",
})  # fmt: skip


_LOWER: dict[str, str] = {}


def _lower(name: str) -> str:
    """`name.lower()`, remembered (header names repeat)."""
    return _remember(_LOWER, name, str.lower)  # type: ignore[no-any-return]


def _header_names(headers: Any) -> tuple[str, ...] | dict[str, Any]:
    """The names of the control's response headers: the keys of its `headers` object; none
    for any other value. Kept as its text by the pruned decode (`fields.RAW`), the object is
    decoded to its keys only (`fields.KEYS`), or whole where that decode does not take it."""
    if type(headers) is bytes:
        try:
            headers = decode_pruned(headers, KEYS)
        except ValueError:
            headers = decode_raw(headers)
    if type(headers) is tuple or isinstance(headers, dict):
        return headers
    return ()


def _uncommon(names: Iterable[Any]) -> set[str]:
    return {_lower(n) for n in names if isinstance(n, str)} - _COMMON_HEADERS


def _same_page(final: HttpExchange, ctrl: dict[str, Any]) -> bool:
    """OONI's classic comparison: same status code, and a matching body length (proportion
    above 0.7), uncommon headers or title.

    The three matches are checked in turn, cheapest first; none of them can raise, so
    stopping at the first that holds gives what computing all three would."""
    c_code = ctrl.get("status_code")
    if not isinstance(c_code, int) or final.status_code != c_code:
        return False
    c_len = ctrl.get("body_length")
    p_len = final.body_length
    if isinstance(c_len, int) and c_len > 0 and p_len is not None:
        # The proportion of the smaller to the larger length.
        lo, hi = (c_len, p_len) if c_len <= p_len else (p_len, c_len)
        if hi > 0 and lo / hi > 0.7:
            return True
    c_title = ctrl.get("title")
    if isinstance(c_title, str) and c_title and final.title:
        # The control title's first word of 5+ characters is a word of the probe's title.
        for w in c_title.split():
            if len(w) >= 5:
                if w in final.title.split():
                    return True
                break
    # Headers: an uncommon header in both, or none in either (and the control has headers).
    # The control's uncommon headers are a few; the probe's names are compared with them
    # without first taking out its common ones.
    c_names = _header_names(ctrl.get("headers"))
    c_unc = _uncommon(c_names)
    p_names = {_lower(k) for k, _ in final.headers if isinstance(k, str)}
    if c_unc:
        return not c_unc.isdisjoint(p_names)
    return bool(c_names) and p_names <= _COMMON_HEADERS


CONFIRMED3: Triple = (1.0, 0.0, 0.0)
BLOCKED_50 = blocked(0.5)
BLOCKED_60 = blocked(0.6)
BLOCKED_80 = blocked(0.8)
BLOCKED_90 = blocked(0.9)

# (facts, dns, tcp, tls, http scores) of one measurement.
_Facts = tuple[set[str], Triple, Triple, Triple, Triple]


def _web_connectivity(tk: dict[str, Any], ex: Extracted, url: str | None) -> _Facts:
    """`url`: the measurement's input when it is a string."""
    return _wc_facts(tk, ex, url)


def _wc_facts(tk: dict[str, Any], ex: Extracted, url: str | None) -> _Facts:
    """`_web_connectivity`, compiled with the types of its locals (`analysis.pxd`): its
    objects are dicts by exact class, as JSON decodes them (as `extract` takes them; a dict
    of another class raises TypeError, and the analysis fails saying so)."""
    facts: set[str] = set()
    s_dns = s_tcp = s_tls = s_http = NOT_REACHED
    reqs = ex.http
    if url is None and reqs and reqs[-1].url:
        url = reqs[-1].url
    url = url or ""
    hostname, scheme = _host_scheme(url)
    host = hostname or ""
    https = scheme == "https"
    # The control's DNS and HTTP results; its TCP and TLS ones are read only where a step
    # failed (or addresses need vouching for).
    # A control with none of the sections read here (`fields.CONTROL_SECTIONS`) counts as
    # none: the pruned view keeps only those.
    got = tk.get("control")
    if isinstance(got, dict) and _any_key(got, CONTROL_SECTIONS):
        control = got
        c_dns = _d(control.get("dns"))
        c_http = _d(control.get("http_request"))
    else:
        control = c_dns = c_http = _NO_DICT
    c_code = c_http.get("status_code")
    c_http_ok = bool(c_http) and c_http.get("failure") is None and _is_number(c_code) and c_code > 0
    control_usable = tk.get("control_failure") is None and control is not _NO_DICT

    fp_http = fp_dns = False
    for m in ex.matches:
        if m.confirmed:
            if m.fingerprint.location == "dns":
                fp_dns = True
            else:
                fp_http = True
    if fp_http:
        facts.add("fp_http_confirmed")
    if fp_dns:
        facts.add("fp_dns_confirmed")

    # DNS
    dns_obs = ex.dns
    p_fail = tk.get("dns_experiment_failure")
    if not isinstance(p_fail, str):
        p_fail = None
    # The addresses the probe got for the measured host, else for any host it looked up;
    # with none, the failure of those lookups.
    p_addrs = {o.ip for o in dns_obs if o.ip and o.hostname == host}
    if not p_addrs:
        own = [o for o in dns_obs if o.hostname == host] or dns_obs
        p_addrs = {o.ip for o in own if o.ip}
        if p_fail is None and own and not p_addrs:
            for o in own:
                if o.failure:
                    p_fail = o.failure
                    break
    c_fail = c_dns.get("failure")
    if not isinstance(c_fail, str):
        c_fail = None
    c_addrs_raw = c_dns.get("addrs")
    c_addrs = _addresses(c_addrs_raw) if isinstance(c_addrs_raw, list) else set()
    c_dns_known = control_usable and bool(c_dns) and (c_fail is not None or c_addrs_raw is not None)
    dns_inconsistent = False
    if p_fail is not None:
        if c_dns_known and c_fail is None:
            dns_inconsistent = True
            s_dns = BLOCKED_90
        elif c_dns_known and (c_fail in NXDOMAIN) == (p_fail in NXDOMAIN):
            s_dns = DOWN3
        else:
            s_dns = layer_scores("dns", p_fail, None)
    elif p_addrs:
        s_dns = OK3
        if fp_dns or (_any_bogon(p_addrs) and not _any_bogon(c_addrs)):
            dns_inconsistent = True
            s_dns = CONFIRMED3
        elif (c_dns_known and c_fail in NXDOMAIN) or (
            c_dns_known and not (p_addrs & c_addrs) and not _vouched(p_addrs, ex, c_addrs, control)
        ):
            dns_inconsistent = True
            s_dns = BLOCKED_80
    if dns_inconsistent:
        facts.add("dns_inconsistent")

    # TCP: the connects, leaving out those with no route from the probe; one success makes
    # the layer ok, else the first failure decides.
    tcp_ok = False
    tcp_fail = None
    for o in ex.tcp:
        f = o.failure
        if not f:
            tcp_ok = True
            break
        if tcp_fail is None and f not in LOCAL_ROUTE_FAILURES:
            tcp_fail = f
    if tcp_ok:
        s_tcp = OK3
    elif tcp_fail is not None:
        ctrl_reached = _any_status_true(_d(control.get("tcp_connect"))) or c_http_ok
        s_tcp = layer_scores("tcp", tcp_fail, ctrl_reached if control_usable else None)
        if ctrl_reached and control_usable and not dns_inconsistent:
            facts.add("tcp_all_failed")

    # TLS: the first failure decides when every handshake failed.
    tls = ex.tls
    final = reqs[0] if reqs else None
    http_fail = tk.get("http_experiment_failure")
    if not isinstance(http_fail, str):
        http_fail = final.failure if final is not None else None
    if tls:
        tls_fail = None
        for o in tls:
            if not o.failure:
                tls_fail = None
                break
            if tls_fail is None:
                tls_fail = o.failure
        if tls_fail is not None:
            ctrl_tls_ok = _any_status_true(_d(control.get("tls_handshake"))) or (
                c_http_ok and https
            )
            s_tls = layer_scores("tls", tls_fail, ctrl_tls_ok if control_usable else None)
            if ctrl_tls_ok and control_usable:
                facts.add("tls_failed")
        else:
            s_tls = OK3
    elif (
        https
        and http_fail
        and (http_fail.startswith("ssl_") or http_fail == "connection_reset")
        and s_tcp == OK3
    ):
        s_tls = layer_scores("tls", http_fail, c_http_ok if control_usable else None)
        if c_http_ok and control_usable:
            facts.add("tls_failed")
    elif https and s_tcp == OK3 and final is not None and final.status_code:
        s_tls = OK3

    # HTTP
    accessible = False
    if final is not None and final.status_code and not final.failure and http_fail is None:
        if c_http_ok and _same_page(final, c_http):
            accessible = True
            s_http = OK3
        elif c_http_ok:
            facts.add("http_diff")
            s_http = BLOCKED_60
        else:
            s_http = OK3
    else:
        facts.add("probe_http_unsuccessful")
        if http_fail is not None:
            s_http = layer_scores("http", http_fail, c_http_ok if control_usable else None)
            if c_http_ok and control_usable:
                facts.add("http_failed")
    if fp_http:
        s_http = CONFIRMED3
    facts.add("http_accessible" if accessible else "not_http_accessible")
    if not control_usable:
        facts.add("control_unavailable")
    elif not c_http_ok:
        facts.add("control_http_failed")
    return facts, s_dns, s_tcp, s_tls, s_http


def _vouched(p_addrs: set[str], ex: Extracted, c_addrs: set[str], control: dict[str, Any]) -> bool:
    """Addresses the control cannot match may still be the site's (CDNs answer differently
    per country). They are vouched for when the probe completed a TLS handshake with one
    (certificate checked), when they share an ASN with the control's (newer controls carry
    `ip_info`), or when the control, connecting to them itself, saw the same TLS outcome as
    with its own addresses (the iCloud Private Relay case)."""
    if any(o.ip in p_addrs and o.failure is None for o in ex.tls):
        return True
    c_tcp, c_tls = _d(control.get("tcp_connect")), _d(control.get("tls_handshake"))
    info = _d(control.get("ip_info"))
    c_asns = {_scalar(_d(info.get(a)).get("asn")) for a in c_addrs} - {None, 0}
    p_asns = {_scalar(_d(info.get(a)).get("asn")) for a in p_addrs} - {None, 0}
    if c_asns & p_asns:
        return True

    def tls_outcome(ip: str) -> set[Any]:
        return {
            (_scalar(_d(v).get("status")), _scalar(_d(v).get("failure")))
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


def _im(name: str, tk: dict[str, Any], ex: Extracted) -> _Facts:
    facts: set[str] = set()
    s_dns = s_tcp = s_tls = s_http = NOT_REACHED
    tls_fail = [o.failure for o in ex.tls if o.failure]
    http_fail = [(h.url or "", h.failure) for h in ex.http if h.failure]
    if "ssl_unknown_authority" in tls_fail:
        facts.add("tls_unknown_authority")
    # (Comprehensions, not generator expressions: `_im` is cpdef, see analysis.pxd.)
    if (
        "android_dns_cache_no_data" in [f for _, f in http_fail]
        or tk.get("signal_backend_failure") == "android_dns_cache_no_data"
    ):
        facts.add("android_dns_no_data")
    # Facts from the recorded steps, ignoring web front ends (web.whatsapp.com,
    # web.telegram.org) whose checks OONI's fastpath does not score.
    api_fail = [(u, f) for u, f in http_fail if "web." not in u]
    if name == "whatsapp" and [u for u, _ in api_fail if "v.whatsapp.net" in u]:
        facts.add("registration_failed")
    dns = ex.dns
    if dns:
        # Failed lookups only: services publish loopback answers on purpose
        # (uptime.signal.org is 127.0.0.1).
        # One pass keeps the few observations with a failure or without an address: a host
        # none of whose lookups gave an address is one of theirs.
        odd = [o for o in dns if o.failure or not o.ip]
        s_dns = BLOCKED_90 if [o for o in odd if o.failure] else OK3
        no_ip = {o.hostname for o in odd if not o.ip}
        if no_ip and no_ip - {o.hostname for o in dns if o.ip}:
            facts.add("dns_failed")
    tcp = ex.tcp
    if tcp:
        failed = [o for o in tcp if o.failure]
        s_tcp = OK3 if not failed else blocked(0.75 * len(failed) / len(tcp))
        if failed and (len(failed) == len(tcp) or (name == "telegram" and _a_port_all_failed(tcp))):
            facts.add("tcp_blocked")
    tls = ex.tls
    if tls:
        s_tls = OK3 if not tls_fail else layer_scores("tls", tls_fail[0], None)
        if tls_fail and len(tls_fail) == len(tls):
            facts.add("tls_blocked")
    if ex.http:
        s_http = OK3 if not api_fail else layer_scores("http", api_fail[0][1], None)
        if api_fail and len(api_fail) == len([h for h in ex.http if "web." not in (h.url or "")]):
            facts.add("http_blocked")
    return facts, s_dns, s_tcp, s_tls, s_http


def _a_port_all_failed(tcp: list[Observation]) -> bool:
    """Whether every connect to some port failed (Telegram's data centres on port 80, say)."""
    by_port: dict[int | None, list[Observation]] = {}
    for o in tcp:
        by_port.setdefault(o.port, []).append(o)
    return any(all(x.failure for x in g) for g in by_port.values())


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
    major_minor = tuple(int(p) for p in version.split(".")[:2] if p.isascii() and p.isdigit())
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


_PLANS: dict[str, tuple[str, str]] = {}


def _plan(test_name: str) -> tuple[str, str]:
    """The test's fact group and the name its rules go by ("*" for a test the pipeline
    does not score)."""
    return _remember(_PLANS, test_name, _make_plan)  # type: ignore[no-any-return]


def _make_plan(test_name: str) -> tuple[str, str]:
    group = FACT_GROUP.get(test_name, "generic")
    return group, test_name if group != "generic" else "*"


# `analyze` builds each Verdict from its values in this order (which the import checks against
# the dataclass), writing its slots directly (`_native.SlotMaker`: a fifth of the cost of the
# dataclass's own __init__).
_VERDICT_FIELDS = (
    "measurement_uid", "report_id", "input", "domain", "probe_cc", "probe_asn", "test_name",
    "measurement_start_time", "category_code", "anomaly", "confirmed", "failure",
    "blocking_type", "dns_blocked", "dns_down", "dns_ok", "tcp_blocked", "tcp_down", "tcp_ok",
    "tls_blocked", "tls_down", "tls_ok", "http_blocked", "http_down", "http_ok", "fingerprints",
    "rules", "probe_blocking", "probe_accessible", "disagrees_with_probe", "raw_path",
    "raw_line", "rules_version",
)  # fmt: skip
# Compiled, this module reads these classes' fields from their C layout (`_records.pxd`):
# a field added, removed or renamed must be mirrored in `_layouts.pxd`, or the import fails.
check_layouts(Observation, Extracted, HttpExchange, Match, RawMeasurement)

_new_verdict = SlotMaker(Verdict)
_new_analysis = SlotMaker(Analysis)
if _new_verdict.names != _VERDICT_FIELDS:
    raise ImportError("Verdict's fields changed: update analysis._VERDICT_FIELDS and analyze()")


def analyze(raw: RawMeasurement, fpdb: FingerprintDB) -> Analysis:
    """The observations and the verdict of one measurement. Never raises for any content:
    an exception in the analysis (a bug) gives a failure verdict that says so, with the
    reason in `Analysis.error`, so that one measurement cannot stop a run."""
    try:
        return _analyze(raw, fpdb)
    except Exception as exc:  # (errors as data: the callers report it and go on)
        return _analysis_failed(raw, f"{type(exc).__name__}: {exc}")


def _test_name(doc: dict[str, Any]) -> str:
    return str(doc.get("test_name") or "unknown")


def _probe_cc(doc: dict[str, Any]) -> str:
    return str(doc.get("probe_cc") or "ZZ")


def _input(doc: dict[str, Any]) -> str | None:
    inp = doc.get("input")
    return inp if isinstance(inp, str) else None


def _analysis_failed(raw: RawMeasurement, error: str) -> Analysis:
    view: Any = raw.view
    # (Whatever the analysis failed on: the envelope's helpers take an exact dict.)
    doc = dict(view) if isinstance(view, dict) else {}
    v = _verdict(
        raw, doc, _input(doc), _test_name(doc), _probe_cc(doc), False, False, True, None,
        NOT_REACHED, NOT_REACHED, NOT_REACHED, NOT_REACHED, [], [ANALYSIS_FAILED.id],
        None, None, False,
    )  # fmt: skip
    return _new_analysis(v, [], {"analysis_failed"}, error)


def _verdict(
    raw: RawMeasurement,
    doc: dict[str, Any],
    inp_s: str | None,
    test_name: str,
    cc: str,
    anomaly: bool,
    confirmed: bool,
    failure: bool,
    blocking_type: str | None,
    s_dns: Triple,
    s_tcp: Triple,
    s_tls: Triple,
    s_http: Triple,
    fp_names: list[str],
    rules: list[str],
    probe_blocking: str | None,
    probe_accessible: bool | None,
    disagrees: bool,
) -> Verdict:
    """The verdict, its fields in `_VERDICT_FIELDS`'s order; the envelope's (uid, report_id,
    input, domain, probe_cc, probe_asn, test_name, measurement_start_time) from `raw`, `doc`
    and the values the caller has already read. One call with each value (no tuples joined
    and unpacked on the way)."""
    domain = _host_scheme(inp_s)[0] if inp_s and "://" in inp_s else inp_s
    asn = doc.get("probe_asn")
    return _new_verdict(
        raw.uid, str(doc.get("report_id") or ""), inp_s, domain, cc,
        str(asn) if asn is not None else "AS0", test_name, _time(doc), None, anomaly,
        confirmed, failure, blocking_type, s_dns[0], s_dns[1], s_dns[2], s_tcp[0], s_tcp[1],
        s_tcp[2], s_tls[0], s_tls[1], s_tls[2], s_http[0], s_http[1], s_http[2], fp_names,
        rules, probe_blocking, probe_accessible, disagrees, raw.path, raw.line, RULES_VERSION,
    )  # fmt: skip


def _analyze(raw: RawMeasurement, fpdb: FingerprintDB) -> Analysis:
    doc = raw.view  # what the analysis reads (fields.PRUNE_SPEC)
    tk_raw = doc.get("test_keys")
    tk = tk_raw if isinstance(tk_raw, dict) else {}
    test_name = _test_name(doc)
    cc = _probe_cc(doc)
    ex = extract(tk, raw.uid, cc, fpdb)
    group, rules_name = _plan(test_name)
    inp_s = _input(doc)
    s_dns = s_tcp = s_tls = s_http = NOT_REACHED
    facts: set[str]
    if tk_raw is None:
        facts = {"no_test_keys"}
    elif group == "web_connectivity":
        facts, s_dns, s_tcp, s_tls, s_http = _web_connectivity(tk, ex, inp_s)
    elif group == "im":
        facts, s_dns, s_tcp, s_tls, s_http = _im(test_name, tk, ex)
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
    rule_id, anomaly, rule_confirmed, failure, blocking_type = decision(
        rules_name, frozenset(facts)
    )
    matches = ex.matches
    if matches:
        names: set[str] = set()
        confirmed = rule_confirmed
        for m in matches:  # (a loop: a cpdef function has no generator expressions)
            names.add(m.fingerprint.name)
            if m.confirmed:
                confirmed = True
        fp_names = sorted(names)
    else:
        fp_names = []
        confirmed = rule_confirmed
    probe_blocking_raw = tk.get("blocking")
    probe_blocking = (
        None
        if probe_blocking_raw is None or "blocking" not in tk
        else ("false" if probe_blocking_raw is False else str(probe_blocking_raw))
    )
    probe_accessible = tk.get("accessible")
    if not isinstance(probe_accessible, bool):
        probe_accessible = None
    disagrees = False
    if probe_blocking is not None and not failure:
        probe_anomaly = probe_blocking != "false"
        disagrees = probe_anomaly != anomaly or (
            anomaly and probe_anomaly and probe_blocking != blocking_type
        )
    v = _verdict(
        raw, doc, inp_s, test_name, cc, anomaly, confirmed and anomaly, failure,
        blocking_type if anomaly else None, s_dns, s_tcp, s_tls, s_http, fp_names,
        [rule_id], probe_blocking, probe_accessible, disagrees,
    )  # fmt: skip
    return _new_analysis(v, ex.observations, facts, None)
