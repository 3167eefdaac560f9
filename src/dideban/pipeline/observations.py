# cython: annotation_typing=False
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
from dideban.pipeline import _native
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


_TITLE_SPAN = 65536  # characters searched from the start


def title_of(body: str | bytes | None) -> str | None:
    """The text of the page's <title> (stripped), searched for in its first 65,536 characters;
    `body` as text or as its UTF-8."""
    if not body:
        return None
    if isinstance(body, bytes):
        return _title_of_utf8(body)
    m = _TITLE.search(body[:_TITLE_SPAN])
    return m.group(1).strip() if m else None


def _title_of_utf8(body: bytes) -> str | None:
    """`title_of` the text of `body` (its UTF-8), found without decoding it (see
    `_native.title_span`)."""
    where = _title_span(body, _TITLE_SPAN)
    if where is False:
        return title_of(body.decode("utf-8", "replace"))
    if where is None:
        return None
    return body[where[0] : where[1]].decode("utf-8", "replace").strip()


@dataclass(slots=True)
class HttpExchange:
    url: str | None
    failure: str | None
    status_code: int | None
    headers: list[tuple[str, str]]
    title: str | None
    body_length: int | None


@dataclass(slots=True)
class Extracted:
    observations: list[Observation] = field(default_factory=list)
    matches: list[Match] = field(default_factory=list)
    http: list[HttpExchange] = field(default_factory=list)
    # The observations again, by kind (the analysis looks at one kind at a time).
    dns: list[Observation] = field(default_factory=list)
    tcp: list[Observation] = field(default_factory=list)
    tls: list[Observation] = field(default_factory=list)


def extract(test_keys: dict[str, Any], uid: str, probe_cc: str, fpdb: FingerprintDB) -> Extracted:
    """Observations and fingerprint matches from the standard archival records of
    `test_keys` (the whole dict, or one pruned to `fields.PRUNE_SPEC`: only those keys are
    read).

    One observation per DNS answer (or per query without answers), TCP connect, TLS handshake
    and HTTP exchange, in that order, numbered from 0. JSON values are checked by exact class,
    as the decoders make them: a value of another type becomes None (a number where a string
    belongs, a bool where a number belongs). Each body, each header the fingerprints look at
    and each DNS answer is matched against the fingerprints; every match is also listed in
    `matches`, with whether it confirms blocking for `probe_cc`.

    The pipeline's hot path: compiled (`_native.pyx`, Cython)."""
    return _extract(test_keys, uid, probe_cc, fpdb)


# Per measurement: names of this module, not attributes of another read at each call.
_extract = _native.extract
_title_span = _native.title_span


_native.bind(Observation, Extracted, HttpExchange, Match, as_text, title_of)
