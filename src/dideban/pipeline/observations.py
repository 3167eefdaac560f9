"""Flat observations (one row per DNS answer, TCP connect, TLS handshake, HTTP exchange) from
the archival records of a measurement's test_keys, with fingerprint matches attached.

Tolerant by design: OONI's data format changed a lot between 0.0.1 and 0.5.x (bodies and
header values as strings, base64 objects or nested dicts; `headers` vs `headers_list`; keys
missing or null). Anything unexpected becomes None, never an exception.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from dideban.model.verdict import Observation
from dideban.pipeline.fingerprints import Fingerprint, FingerprintDB, Match

_TITLE = re.compile(r"<title[^>]*>([^<]*)</title", re.I)


def as_text(value: Any) -> str | None:
    """A body or header value as text: plain string, `{"format": "base64", "data": ...}`."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        data = value.get("data")
        if value.get("format") == "base64" and isinstance(data, str):
            try:
                return base64.b64decode(data, validate=False).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                return None
        return None
    if isinstance(value, list):
        parts = [as_text(v) for v in value]
        return ", ".join(p for p in parts if p is not None)
    return str(value)


def headers_of(response: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    hl = response.get("headers_list")
    if isinstance(hl, list):
        append = out.append
        for item in hl:
            if item.__class__ in _PAIR and len(item) == 2:
                k, v = item
                if k.__class__ is str:
                    if v.__class__ is not str:
                        v = as_text(v)
                    if v is not None:
                        append((k, v))
        if out:
            return out
    h = response.get("headers")
    if isinstance(h, dict):
        for k, v in h.items():
            text = v if v.__class__ is str else as_text(v)
            if isinstance(k, str) and text is not None:
                out.append((k, text))
    return out


_PAIR = (list, tuple)


def title_of(body: str | None) -> str | None:
    if not body:
        return None
    m = _TITLE.search(body[:65536])
    return m.group(1).strip() if m else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def split_address(address: Any) -> tuple[str | None, int | None]:
    if not isinstance(address, str) or ":" not in address:
        return _str(address), None
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    return host, int(port) if port.isdigit() else None


@dataclass
class HttpExchange:
    url: str | None
    failure: str | None
    status_code: int | None
    body: str | None
    headers: list[tuple[str, str]]
    title: str | None
    body_length: int | None


@dataclass
class Extracted:
    observations: list[Observation] = field(default_factory=list)
    matches: list[Match] = field(default_factory=list)
    http: list[HttpExchange] = field(default_factory=list)
    # The observations again, by kind (the analysis looks at one kind at a time).
    dns: list[Observation] = field(default_factory=list)
    tcp: list[Observation] = field(default_factory=list)
    tls: list[Observation] = field(default_factory=list)


# JSON numbers and strings as the parsers make them (exact types: bool is not a number).
_NUMBERS = (int, float)


def _n(value: Any) -> float | None:
    return float(value) if value.__class__ in _NUMBERS else None


def _s(value: Any) -> str | None:
    return value if value.__class__ is str else None


def _i(value: Any) -> int | None:
    return value if value.__class__ is int else None


def extract(test_keys: dict[str, Any], uid: str, probe_cc: str, fpdb: FingerprintDB) -> Extracted:
    """Observations and fingerprint matches from the standard archival records.

    The hot path of the pipeline: observations are built with positional arguments (field
    order of `Observation`), and the JSON values are type-checked by exact class (what
    orjson and json make) instead of through helper calls."""
    ex = Extracted()
    obs = ex.observations
    matches = ex.matches

    def fp_names(found: list[Fingerprint]) -> list[str]:
        names = []
        for fp in found:
            matches.append(Match(fp, fp.confirms(probe_cc)))
            names.append(fp.name)
        return names

    get = test_keys.get
    queries = get("queries")
    if queries.__class__ is list:
        dns = ex.dns
        match_dns = fpdb.match_dns
        for q in queries:
            if q.__class__ is not dict:
                continue
            qg = q.get
            tid = _i(qg("transaction_id"))
            hostname = _s(qg("hostname"))
            engine = _s(qg("engine"))
            failure = _s(qg("failure"))
            t0 = _n(qg("t0"))
            t = _n(qg("t"))
            answers = qg("answers")
            any_answer = False
            if answers.__class__ is list:
                for a in answers:
                    if a.__class__ is not dict:
                        continue
                    any_answer = True
                    ag = a.get
                    value = _s(ag("ipv4")) or _s(ag("ipv6")) or _s(ag("hostname"))
                    is_ip = ag("answer_type") in ("A", "AAAA")
                    found = match_dns(value) if value else None
                    o = Observation(
                        uid, len(obs), "dns", tid, hostname, value if is_ip else None, None,
                        engine, value, None, None, None, None, None, failure, t0, t,
                        fp_names(found) if found else [],
                    )  # fmt: skip
                    obs.append(o)
                    dns.append(o)
            if not any_answer:
                o = Observation(
                    uid, len(obs), "dns", tid, hostname, None, None, engine, None, None, None,
                    None, None, None, failure, t0, t, [],
                )  # fmt: skip
                obs.append(o)
                dns.append(o)
    connects = get("tcp_connect")
    if connects.__class__ is list:
        tcp = ex.tcp
        for c in connects:
            if c.__class__ is not dict:
                continue
            cg = c.get
            status = cg("status")
            failure = _s(status.get("failure")) if status.__class__ is dict else None
            o = Observation(
                uid, len(obs), "tcp", _i(cg("transaction_id")), None, _s(cg("ip")),
                _i(cg("port")), None, None, None, None, None, None, None, failure,
                _n(cg("t0")), _n(cg("t")), [],
            )  # fmt: skip
            obs.append(o)
            tcp.append(o)
    handshakes = get("tls_handshakes")
    if handshakes.__class__ is list:
        tls = ex.tls
        for h in handshakes:
            if h.__class__ is not dict:
                continue
            hg = h.get
            ip, port = split_address(hg("address"))
            o = Observation(
                uid, len(obs), "tls", _i(hg("transaction_id")), None, ip, port, None, None,
                _s(hg("server_name")), None, None, None, None, _s(hg("failure")),
                _n(hg("t0")), _n(hg("t")), [],
            )  # fmt: skip
            obs.append(o)
            tls.append(o)
    requests = get("requests")
    if requests.__class__ is list:
        match_body = fpdb.match_body
        match_header = fpdb.match_header
        for r in requests:
            if r.__class__ is not dict:
                continue
            rg = r.get
            req = rg("request")
            resp = rg("response")
            if resp.__class__ is not dict:
                resp = {}
            raw_body = resp.get("body")
            body = raw_body if raw_body.__class__ is str else as_text(raw_body)
            headers = headers_of(resp)
            code = _i(resp.get("code"))
            names: list[str] = []
            if body:
                found = match_body(body)
                if found:
                    names += fp_names(found)
            for k, v in headers:
                found = match_header(k, v)
                if found:
                    names += fp_names(found)
            title = title_of(body)
            url = _s(req.get("url")) if req.__class__ is dict else None
            if body is None:
                blen = None
            elif body.isascii():
                blen = len(body)
            else:
                blen = len(body.encode("utf-8", "replace"))
            failure = _s(rg("failure"))
            ex.http.append(HttpExchange(url, failure, code, body, headers, title, blen))
            o = Observation(
                uid, len(obs), "http", _i(rg("transaction_id")), None, None, None, None,
                None, None, url, code if code else None, blen, title, failure,
                _n(rg("t0")), _n(rg("t")), names,
            )  # fmt: skip
            obs.append(o)
    return ex
