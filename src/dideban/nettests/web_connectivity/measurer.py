"""The operations web_connectivity needs, as one small interface.

A `WebMeasurer` performs one measurement's network operations and records each as OONI archival
data; `archival()` returns the recorded keys (`queries`, `tcp_connect`, `tls_handshakes`,
`requests`, `network_events`, `x_dns_duplicate_responses`). The real implementation sits on
`dideban.measure` (see `measure_adapter.py`); tests use scripted fakes. Failures are returned
as OONI failure strings, never raised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class DNSOutcome:
    addrs: list[str]
    failure: str | None


@dataclass(frozen=True)
class ControlOutcome:
    response: dict[str, Any] | None
    failure: str | None


@dataclass
class ArchivalKeys:
    queries: list[dict[str, Any]] = field(default_factory=list)
    tcp_connect: list[dict[str, Any]] = field(default_factory=list)
    tls_handshakes: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    network_events: list[dict[str, Any]] = field(default_factory=list)
    x_dns_duplicate_responses: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "queries": self.queries,
            "tcp_connect": self.tcp_connect,
            "tls_handshakes": self.tls_handshakes,
            "requests": self.requests,
            "network_events": self.network_events,
            "x_dns_duplicate_responses": self.x_dns_duplicate_responses,
        }


class WebMeasurer(Protocol):
    async def lookup_getaddrinfo(self, domain: str) -> DNSOutcome:
        """System resolver lookup (A and AAAA), recorded in `queries`."""
        ...

    async def lookup_udp(self, domain: str) -> DNSOutcome:
        """DNS over UDP to the network's resolver; every reply recorded, late ones as
        `x_dns_duplicate_responses`."""
        ...

    async def tcp_connect(self, ip: str, port: int, server_name: str | None) -> str | None:
        """TCP connect (then a TLS handshake with `server_name` if given); the first failure."""
        ...

    async def http_get(self, url: str, headers: dict[str, str]) -> str | None:
        """GET following up to 10 redirects, recorded in `requests` (newest first)."""
        ...

    async def control(self, helper_url: str, request: dict[str, Any]) -> ControlOutcome:
        """POST the control request to the test helper."""
        ...

    def archival(self) -> dict[str, Any]: ...


MeasurerFactory = Callable[[], WebMeasurer]
