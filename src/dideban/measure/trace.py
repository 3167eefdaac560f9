"""The per-measurement trace: relative times, transaction ids, and OONI archival records.

Record shapes follow OONI's data formats (df-002 DNS, df-005 TCP connect, df-006 TLS, df-008
network events and df-001 HTTP requests), as seen in web_connectivity 0.5 measurements. Building
a record is a few dict literals: the measure layer must stay cheap next to the I/O it records.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from dideban.netx.clock import Clock

# (ip) -> (asn, as_org_name); the default knows nothing.
ASNLookup = Callable[[str], tuple[int, str]]


def _no_asn(ip: str) -> tuple[int, str]:
    del ip
    return 0, ""


def encode_body(body: bytes) -> str | dict[str, str]:
    """A body as OONI stores it: the text when it is valid UTF-8, else
    `{"format": "base64", "data": ...}`."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return {"format": "base64", "data": base64.b64encode(body).decode("ascii")}


def encode_headers(headers: list[tuple[str, str]]) -> tuple[dict[str, str], list[list[str]]]:
    """(`headers` map, first value of each name wins; `headers_list` in order) as OONI stores
    them."""
    mapping: dict[str, str] = {}
    for name, value in headers:
        mapping.setdefault(name, value)
    return mapping, [[name, value] for name, value in headers]


class Trace:
    """One measurement's recording. `t0`/`t` in records are seconds since `start` on `clock`
    (`start` defaults to now); each step takes a fresh `transaction_id` via `next_id()`."""

    def __init__(
        self,
        clock: Clock,
        start: float | None = None,
        *,
        tags: list[str] | None = None,
        asn_lookup: ASNLookup | None = None,
    ) -> None:
        self.clock = clock
        self.start = clock.now() if start is None else start
        self.tags = list(tags or [])
        self.asn_lookup = asn_lookup or _no_asn
        self._next_id = 0
        self.queries: list[dict[str, Any]] = []
        self.tcp_connect: list[dict[str, Any]] = []
        self.tls_handshakes: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.network_events: list[dict[str, Any]] = []

    def elapsed(self, at: float | None = None) -> float:
        """Seconds since the measurement start (of `at`, a clock reading, or of now)."""
        now = self.clock.now() if at is None else at
        return round(now - self.start, 6)

    def next_id(self) -> int:
        """A new transaction id (1, 2, ...)."""
        self._next_id += 1
        return self._next_id

    def archival(self) -> dict[str, Any]:
        """The recorded lists under their test_keys names."""
        return {
            "queries": self.queries,
            "tcp_connect": self.tcp_connect,
            "tls_handshakes": self.tls_handshakes,
            "requests": self.requests,
            "network_events": self.network_events,
        }

    # --- record builders (append and return the record) ------------------------------------

    def answer(self, answer_type: str, value: str, ttl: int | None) -> dict[str, Any]:
        """One entry of a query's `answers`."""
        if answer_type in ("A", "AAAA"):
            asn, org = self.asn_lookup(value)
            key = "ipv4" if answer_type == "A" else "ipv6"
            return {
                "answer_type": answer_type,
                key: value,
                "ttl": ttl,
                "asn": asn,
                "as_org_name": org,
            }
        return {"answer_type": answer_type, "hostname": value, "ttl": ttl, "asn": 0,
                "as_org_name": ""}  # fmt: skip

    def add_query(
        self,
        *,
        engine: str,
        hostname: str,
        query_type: str,
        answers: list[dict[str, Any]],
        failure: str | None,
        resolver_address: str,
        t0: float,
        t: float,
        transaction_id: int,
        raw_response: bytes | None = None,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "answers": answers or None,
            "engine": engine,
            "failure": failure,
            "hostname": hostname,
            "query_type": query_type,
            "raw_response": base64.b64encode(raw_response).decode("ascii")
            if raw_response is not None
            else None,
            "resolver_hostname": None,
            "resolver_port": None,
            "resolver_address": resolver_address,
            "t0": self.elapsed(t0),
            "t": self.elapsed(t),
            "tags": self.tags,
            "transaction_id": transaction_id,
        }
        self.queries.append(record)
        return record

    def add_event(
        self,
        operation: str,
        *,
        address: str,
        failure: str | None,
        t0: float,
        t: float,
        transaction_id: int,
        proto: str = "tcp",
    ) -> None:
        self.network_events.append(
            {
                "address": address,
                "failure": failure,
                "operation": operation,
                "proto": proto,
                "t0": self.elapsed(t0),
                "t": self.elapsed(t),
                "transaction_id": transaction_id,
                "tags": self.tags,
            }
        )
