"""The real `WebMeasurer`: web_connectivity's operations as `dideban.measure` steps.

One `MeasureWebMeasurer` (and one `Trace`) per measurement; every step appends its OONI records
to the trace, whose lists become the test_keys.
"""

from __future__ import annotations

from typing import Any

from dideban.measure import (
    Trace,
    dns_lookup_system,
    dns_lookup_udp,
    http_fetch,
    tcp_connect,
    tls_handshake,
)
from dideban.model import failures
from dideban.nettests.web_connectivity.measurer import (
    ControlOutcome,
    DNSOutcome,
    MeasurerFactory,
    WebMeasurer,
)
from dideban.netx import Network, NetxFailure, api_request


class MeasureWebMeasurer:
    def __init__(self, network: Network) -> None:
        self.network = network
        self.trace = Trace(network.clock)
        self.duplicates: list[dict[str, Any]] = []

    async def lookup_getaddrinfo(self, domain: str) -> DNSOutcome:
        result = await dns_lookup_system(self.network, self.trace, domain)
        return DNSOutcome(result.addrs, result.failure)

    async def lookup_udp(self, domain: str) -> DNSOutcome:
        # Outside a lab the OS picks the resolver and its address is not known here: the
        # classic system lookup is then the only one.
        if not self.network.resolver_address:
            return DNSOutcome([], None)
        result = await dns_lookup_udp(self.network, self.trace, domain)
        self.duplicates.extend(result.duplicates)
        return DNSOutcome(result.addrs, result.failure)

    async def tcp_connect(self, ip: str, port: int, server_name: str | None) -> str | None:
        connected = await tcp_connect(self.network, self.trace, ip, port)
        if connected.conn is None:
            return connected.failure
        try:
            if server_name is None:
                return None
            handshake = await tls_handshake(
                self.network,
                self.trace,
                connected.conn,
                server_name,
                transaction_id=connected.transaction_id,
            )
            return handshake.failure
        finally:
            await connected.conn.close()

    async def http_get(self, url: str, headers: dict[str, str]) -> str | None:
        result = await http_fetch(self.network, self.trace, url, list(headers.items()))
        return result.failure

    async def control(self, helper_url: str, request: dict[str, Any]) -> ControlOutcome:
        try:
            response = await api_request(self.network, "POST", helper_url, json_body=request)
        except NetxFailure as exc:
            return ControlOutcome(None, exc.failure)
        if response.status != 200:
            return ControlOutcome(
                None, failures.unknown_failure(f"test helper answered HTTP {response.status}")
            )
        try:
            data = response.json()
        except ValueError:
            return ControlOutcome(None, failures.unknown_failure("test helper sent invalid JSON"))
        if not isinstance(data, dict):
            return ControlOutcome(None, failures.unknown_failure("test helper sent no object"))
        return ControlOutcome(data, None)

    def archival(self) -> dict[str, Any]:
        keys = self.trace.archival()
        keys["x_dns_duplicate_responses"] = self.duplicates
        return keys


def measurer_factory(network: Network) -> MeasurerFactory:
    def new() -> WebMeasurer:
        return MeasureWebMeasurer(network)

    return new
