"""web_connectivity: is a website reachable, and if not, where is it blocked? (OONI ts-017)

One measurement of a URL:

1. resolve the domain with the system resolver (the classic lookup whose answers the analysis
   compares with the control) and, in parallel, with DNS over UDP to the network's resolver,
   which keeps listening after the first reply so that injected answers racing the real one are
   all recorded (`x_dns_duplicate_responses`);
2. in parallel: ask the control test helper to measure the same URL from an uncensored vantage
   point (`control`, `x_control_request`, `control_failure`); TCP-connect to every address the
   probe resolved (with a TLS handshake, SNI = the URL's host, for https); meanwhile, from the
   start, the web step fetches the URL with HTTP GET following redirects;
3. TCP-connect (and TLS) to the addresses only the control resolved;
4. analyse the records (`analysis.analyze`, a pure function) into `blocking` and `accessible`.

Every network operation goes through a `WebMeasurer` (see `measurer.py`), which records it as
OONI archival data; this module only decides what to measure and in what order.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from dideban.nettests import Nettest, passive_from_here, register
from dideban.nettests.web_connectivity.analysis import analyze
from dideban.nettests.web_connectivity.measurer import (
    ControlOutcome,
    DNSOutcome,
    MeasurerFactory,
    WebMeasurer,
)

TEST_NAME: Final = "web_connectivity"
# 0.4.x: the classic algorithm (the analysis uses the system resolver and first request only).
TEST_VERSION: Final = "0.4.3"

# The headers OONI's probe sends (and asks the control to send): a common desktop browser.
REQUEST_HEADERS: Final[dict[str, str]] = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9",
    "User-Agent": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
    ),
}


@dataclass(frozen=True)
class WebConnectivityContext:
    """What a run gives each measurement: how to measure and where the control is."""

    new_measurer: MeasurerFactory
    test_helper_url: str
    client_resolver: str | None = None
    request_headers: dict[str, str] = field(default_factory=lambda: dict(REQUEST_HEADERS))


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _port(url: str) -> int:
    parts = urlsplit(url)
    if parts.port is not None:
        return parts.port
    return 443 if parts.scheme == "https" else 80


def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


async def _connect_all(
    measurer: WebMeasurer, addrs: list[str], port: int, server_name: str | None
) -> None:
    await asyncio.gather(*(measurer.tcp_connect(ip, port, server_name) for ip in addrs))


async def measure(url: str, ctx: WebConnectivityContext) -> dict[str, Any]:
    """Measure `url` and return its web_connectivity test_keys (analysis included)."""
    measurer = ctx.new_measurer()
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = _port(url)
    server_name = host if parts.scheme == "https" else None

    literal = _ip_literal(host)
    # The web step needs nothing from the others (it resolves for itself): start it first, so
    # that a slow or blocked DNS delays it and the connectivity step once, not twice.
    http = asyncio.create_task(measurer.http_get(url, ctx.request_headers))
    udp_task: asyncio.Task[DNSOutcome] | None = None
    if literal is not None:
        system = DNSOutcome(addrs=[literal], failure=None)
    else:
        udp_task = asyncio.create_task(measurer.lookup_udp(host))
        system = await measurer.lookup_getaddrinfo(host)

    control_request = {
        "http_request": url,
        "http_request_headers": {k: [v] for k, v in ctx.request_headers.items()},
        "tcp_connect": [_endpoint(ip, port) for ip in system.addrs],
    }
    control_task = asyncio.create_task(measurer.control(ctx.test_helper_url, control_request))
    connects = asyncio.create_task(_connect_all(measurer, system.addrs, port, server_name))
    control: ControlOutcome = await control_task
    await connects
    if control.response is not None:
        control_addrs = [
            str(a)
            for a in (control.response.get("dns") or {}).get("addrs") or []
            if _ip_literal(str(a))
        ]
        extra = [a for a in control_addrs if a not in system.addrs]
        await _connect_all(measurer, extra, port, server_name)
    http_failure = await http
    if udp_task is not None:
        if not udp_task.done():
            passive_from_here()  # only the DNS listening window remains
        await udp_task

    test_keys: dict[str, Any] = {
        "agent": "redirect",
        "client_resolver": ctx.client_resolver,
        "retries": None,
        "socksproxy": None,
        "x_control_request": control_request,
        "control": control.response or {},
        "control_failure": control.failure,
        "dns_experiment_failure": system.failure if literal is None else None,
        "http_experiment_failure": http_failure,
    }
    test_keys.update(measurer.archival())
    test_keys.update(analyze(url, test_keys))
    return test_keys


async def run(input_url: str, ctx: Any) -> dict[str, Any]:
    if not isinstance(ctx, WebConnectivityContext):
        raise TypeError(f"web_connectivity needs a WebConnectivityContext, got {type(ctx)!r}")
    return await measure(input_url, ctx)


NETTEST: Final = register(
    Nettest(
        name=TEST_NAME,
        version=TEST_VERSION,
        input_kind="url",
        run=run,
        description="Is a website reachable, and where is it blocked (DNS, TCP/IP, TLS, HTTP)?",
    )
)
