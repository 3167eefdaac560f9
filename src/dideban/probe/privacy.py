"""Scrubbing the probe's own addresses from a measurement before it is written or sent.

The collector side's scrubber (`dideban.probe.scrub.scrub_measurement`, issue 3) is used when
it is installed; until then `minimal_scrub` does the same job: every occurrence of one of the
probe's addresses, in any string, dict key or base64 body, becomes 127.0.0.1 (as OONI does),
and nothing else changes.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any

from dideban.model.measurement import SCRUBBED_PROBE_IP

Scrubber = Callable[[dict[str, Any], list[str]], dict[str, Any]]


def _pattern(addresses: Iterable[str]) -> re.Pattern[str] | None:
    v4: set[str] = set()
    v6: set[str] = set()
    for a in addresses:
        try:
            addr = ipaddress.ip_address(a.strip("[]"))
        except ValueError:
            continue
        if addr.version == 4:
            v4.add(str(addr))
        else:
            v6.update({str(addr), addr.exploded})
    if not v4 and not v6:
        return None

    def alternatives(forms: set[str]) -> str:
        return "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))

    # An address must not match inside a longer one (1.2.3.4 in 11.2.3.45).
    parts = []
    if v4:
        parts.append(rf"(?<![\d.])(?:{alternatives(v4)})(?!\d|\.\d)")
    if v6:
        parts.append(rf"(?<![0-9a-f:])(?:{alternatives(v6)})(?![0-9a-f]|:[0-9a-f])")
    return re.compile("|".join(parts), re.IGNORECASE)


def _scrub_text(text: str, pattern: re.Pattern[str]) -> str:
    return pattern.sub(SCRUBBED_PROBE_IP, text)


def _scrub(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return _scrub_text(value, pattern)
    if isinstance(value, list):
        return [_scrub(v, pattern) for v in value]
    if isinstance(value, dict):
        if value.get("format") == "base64" and isinstance(value.get("data"), str):
            return {**value, "data": _scrub_base64(value["data"], pattern)}
        return {_scrub_text(str(k), pattern): _scrub(v, pattern) for k, v in value.items()}
    return value


def _scrub_base64(data: str, pattern: re.Pattern[str]) -> str:
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return _scrub_text(data, pattern)
    text = raw.decode("latin-1")
    scrubbed = _scrub_text(text, pattern)
    if scrubbed == text:
        return data
    return base64.b64encode(scrubbed.encode("latin-1")).decode("ascii")


def minimal_scrub(measurement: dict[str, Any], addresses: list[str]) -> dict[str, Any]:
    """A copy of `measurement` with every one of `addresses` replaced by 127.0.0.1."""
    pattern = _pattern(addresses)
    if pattern is None:
        return measurement
    scrubbed: dict[str, Any] = _scrub(measurement, pattern)
    scrubbed["probe_ip"] = SCRUBBED_PROBE_IP
    return scrubbed


def scrubber() -> Scrubber:
    """H4's `scrub_measurement` when present, else `minimal_scrub`."""
    try:
        module = importlib.import_module("dideban.probe.scrub")
    except ImportError:
        return minimal_scrub
    found = getattr(module, "scrub_measurement", None)
    return found if callable(found) else minimal_scrub
