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
from dideban.pipeline.fingerprints import FingerprintDB, Match

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
        for item in hl:
            if isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], str):
                v = as_text(item[1])
                if v is not None:
                    out.append((item[0], v))
        if out:
            return out
    h = response.get("headers")
    if isinstance(h, dict):
        for k, v in h.items():
            text = as_text(v)
            if isinstance(k, str) and text is not None:
                out.append((k, text))
    return out


def title_of(body: str | None) -> str | None:
    if not body:
        return None
    m = _TITLE.search(body[:65536])
    return m.group(1).strip() if m else None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def split_address(address: Any) -> tuple[str | None, int | None]:
    if not isinstance(address, str) or ":" not in address:
        return _str(address), None
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    return host, int(port) if port.isdigit() else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


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


def extract(test_keys: dict[str, Any], uid: str, probe_cc: str, fpdb: FingerprintDB) -> Extracted:
    """Observations and fingerprint matches from the standard archival records."""
    ex = Extracted()
    obs = ex.observations

    def add(o: Observation) -> None:
        o.observation_idx = len(obs)
        obs.append(o)

    def fp_names(found: list[Any]) -> list[str]:
        names = []
        for fp in found:
            ex.matches.append(Match(fp, fp.confirms(probe_cc)))
            names.append(fp.name)
        return names

    for q in _dicts(test_keys.get("queries")):
        answers = _dicts(q.get("answers"))
        base = {
            "transaction_id": _int(q.get("transaction_id")),
            "hostname": _str(q.get("hostname")),
            "dns_engine": _str(q.get("engine")),
            "failure": _str(q.get("failure")),
            "t0": _num(q.get("t0")),
            "t": _num(q.get("t")),
        }
        if not answers:
            add(Observation(uid, 0, "dns", **base))  # type: ignore[arg-type]
        for a in answers:
            value = _str(a.get("ipv4")) or _str(a.get("ipv6")) or _str(a.get("hostname"))
            is_ip = a.get("answer_type") in ("A", "AAAA")
            o = Observation(uid, 0, "dns", **base)  # type: ignore[arg-type]
            o.dns_answer = value
            o.ip = value if is_ip else None
            if value:
                o.fingerprints = fp_names(fpdb.match_dns(value))
            add(o)
    for c in _dicts(test_keys.get("tcp_connect")):
        status = _dict(c.get("status"))
        add(
            Observation(
                uid,
                0,
                "tcp",
                transaction_id=_int(c.get("transaction_id")),
                ip=_str(c.get("ip")),
                port=_int(c.get("port")),
                failure=_str(status.get("failure")),
                t0=_num(c.get("t0")),
                t=_num(c.get("t")),
            )
        )
    for h in _dicts(test_keys.get("tls_handshakes")):
        ip, port = split_address(h.get("address"))
        add(
            Observation(
                uid,
                0,
                "tls",
                transaction_id=_int(h.get("transaction_id")),
                ip=ip,
                port=port,
                tls_server_name=_str(h.get("server_name")),
                failure=_str(h.get("failure")),
                t0=_num(h.get("t0")),
                t=_num(h.get("t")),
            )
        )
    for r in _dicts(test_keys.get("requests")):
        req = _dict(r.get("request"))
        resp = _dict(r.get("response"))
        body = as_text(resp.get("body"))
        headers = headers_of(resp)
        code = _int(resp.get("code"))
        names: list[str] = []
        if body:
            names += fp_names(fpdb.match_body(body))
        for k, v in headers:
            names += fp_names(fpdb.match_header(k, v))
        title = title_of(body)
        url = _str(req.get("url"))
        blen = len(body.encode("utf-8", "replace")) if body is not None else None
        ex.http.append(HttpExchange(url, _str(r.get("failure")), code, body, headers, title, blen))
        add(
            Observation(
                uid,
                0,
                "http",
                transaction_id=_int(r.get("transaction_id")),
                http_request_url=url,
                http_status_code=code if code else None,
                http_body_length=blen,
                http_title=title,
                failure=_str(r.get("failure")),
                t0=_num(r.get("t0")),
                t=_num(r.get("t")),
                fingerprints=names,
            )
        )
    return ex
