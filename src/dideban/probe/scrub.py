"""Removing the probe's own addresses from a measurement before it is written or sent.

OONI's convention (probe-cli `model.Scrubber`, data format df-000-base) is to replace the
probe's address with `127.0.0.1` wherever it appears, and to change nothing else: the
measurement must stay comparable with every other OONI measurement. An address can hide in
many places: a failure string (`connect 198.51.100.7:443: connection refused`), a URL, a
header value (`X-Forwarded-For`), a header list, an HTTP body that echoes the client address
(plain text, or `{"format": "base64", "data": ...}` when it was not valid UTF-8), or a dict
key. So the scrubber walks every value, and base64 bodies are decoded, scrubbed and encoded
again.

An address only matches on its own: `1.2.3.4` is not replaced inside `11.2.3.45`, and an
IPv6 address is matched in both its compressed and exploded spellings, in any letter case.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Iterable
from typing import Any

from dideban.model.measurement import SCRUBBED_PROBE_IP

__all__ = [
    "AddressMatcher",
    "address_pattern",
    "contains_address",
    "scrub_measurement",
    "scrub_text",
]


def _forms(addresses: Iterable[str]) -> tuple[set[str], set[ipaddress.IPv6Address]]:
    v4: set[str] = set()
    v6: set[ipaddress.IPv6Address] = set()
    for raw in addresses:
        text = raw.strip().strip("[]")
        if "%" in text:  # a zone index (fe80::1%eth0) is not part of the address
            text = text.split("%", 1)[0]
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            continue
        if isinstance(addr, ipaddress.IPv4Address):
            v4.add(str(addr))
            continue
        v6.add(addr)
        if addr.ipv4_mapped is not None:
            v4.add(str(addr.ipv4_mapped))
    return v4, v6


# Anything that could be an IPv6 address (hex groups and at least two colons). Each candidate
# is parsed, so every spelling of an address matches: compressed, exploded, zero-padded or
# not, any letter case.
_V6_CANDIDATE = r"(?<![0-9a-fA-F:])[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}(?![0-9a-fA-F:])"


class AddressMatcher:
    """Finds and replaces a set of addresses in text, each only as a whole address."""

    def __init__(self, v4: set[str], v6: set[ipaddress.IPv6Address]) -> None:
        self._v6 = v6
        parts = []
        if v4:
            # Longest first, so that an address is never cut short by a prefix of another.
            alts = "|".join(re.escape(f) for f in sorted(v4, key=len, reverse=True))
            parts.append(rf"(?<![0-9.])(?:{alts})(?![0-9]|\.[0-9])")
        if v6:
            parts.append(_V6_CANDIDATE)
        self._regex = re.compile("|".join(parts))
        self._v4 = v4

    def _is_probe(self, token: str) -> bool:
        if token in self._v4:
            return True
        if ":" not in token:
            return False
        try:
            return ipaddress.IPv6Address(token) in self._v6
        except ValueError:
            return False

    def _replace(self, m: re.Match[str]) -> str:
        token = m.group(0)
        return SCRUBBED_PROBE_IP if self._is_probe(token) else token

    def sub(self, text: str) -> str:
        return self._regex.sub(self._replace, text)

    def search(self, text: str) -> str | None:
        """The first probe address found in `text`, or None."""
        for m in self._regex.finditer(text):
            if self._is_probe(m.group(0)):
                return m.group(0)
        return None


def address_pattern(addresses: Iterable[str]) -> AddressMatcher | None:
    """A matcher for any of `addresses` as a whole address, or None if there is none."""
    v4, v6 = _forms(addresses)
    if not v4 and not v6:
        return None
    return AddressMatcher(v4, v6)


def scrub_text(text: str, pattern: AddressMatcher) -> str:
    return pattern.sub(text)


def contains_address(text: str, pattern: AddressMatcher) -> bool:
    return pattern.search(text) is not None


def _scrub_base64(data: str, pattern: AddressMatcher) -> str:
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return scrub_text(data, pattern)
    # latin-1 maps every byte to one code point and back, so non-text bodies survive intact.
    text = raw.decode("latin-1")
    if pattern.search(text) is None:
        return data
    return base64.b64encode(scrub_text(text, pattern).encode("latin-1")).decode("ascii")


def _scrub(value: Any, pattern: AddressMatcher) -> Any:
    if isinstance(value, str):
        return pattern.sub(value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        is_b64 = value.get("format") == "base64" and isinstance(value.get("data"), str)
        for k, v in value.items():
            key = pattern.sub(k) if isinstance(k, str) else k
            if is_b64 and k == "data":
                out[key] = _scrub_base64(v, pattern)
            else:
                out[key] = _scrub(v, pattern)
        return out
    if isinstance(value, list | tuple):
        return [_scrub(v, pattern) for v in value]
    return value


def scrub_measurement(measurement: dict[str, Any], addresses: Iterable[str]) -> dict[str, Any]:
    """A copy of `measurement` with each of `addresses` replaced by 127.0.0.1 everywhere.

    `probe_ip` is always set to 127.0.0.1. Nothing else is added, dropped or changed; the
    input is not modified. Strings that are not IP addresses in `addresses` are ignored.
    """
    pattern = address_pattern(addresses)
    scrubbed: dict[str, Any]
    scrubbed = _scrub(measurement, pattern) if pattern is not None else _copy(measurement)
    scrubbed["probe_ip"] = SCRUBBED_PROBE_IP
    return scrubbed


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value
