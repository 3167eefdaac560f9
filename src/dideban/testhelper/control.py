"""The web-connectivity control measurement (OONI ts-017 test helper, as oohelperd answers).

Given the probe's URL, headers and the endpoints it found, the helper resolves the URL's host
itself, connects to the union of the probe's and its own endpoints (TLS with SNI = host for
https), and fetches the URL following redirects. Outside lab mode it never dials loopback,
private, link-local or other non-global addresses: those endpoints get a failure in the
answer instead.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from dideban.measure import Trace, http_fetch, tcp_connect, tls_handshake
from dideban.model import failures
from dideban.model.labnet import is_lab_address
from dideban.netx import Network, NetxFailure, join_hostport, parse_url, split_hostport
from dideban.netx.network import is_global_unicast

REFUSED_DESTINATION = failures.unknown_failure("test helper refuses non-global destination")
MAX_ENDPOINTS = 64

# OONI's ip_info flags (oohelperd): who resolved the address and what we know of it.
FLAG_RESOLVED_BY_PROBE = 1
FLAG_RESOLVED_BY_TH = 2
FLAG_IS_BOGON = 4
FLAG_VALID_FOR_DOMAIN = 8

_TITLE = re.compile(rb"<title[^>]*>([^<]{1,512})</title>", re.IGNORECASE)


class BadControlRequest(ValueError):
    """The request body is not a valid control request (message says why)."""


@dataclass(frozen=True)
class ControlRequest:
    http_request: str
    http_request_headers: list[tuple[str, str]]
    tcp_connect: list[str]


def parse_control_request(data: Any) -> ControlRequest:
    """Validate a decoded JSON body; raises `BadControlRequest` with a clear message."""
    if not isinstance(data, dict):
        raise BadControlRequest("the body must be a JSON object")
    url = data.get("http_request")
    if not isinstance(url, str):
        raise BadControlRequest("http_request must be a URL string")
    try:
        parse_url(url)
    except ValueError as exc:
        raise BadControlRequest(f"http_request: {exc}") from None
    raw_headers = data.get("http_request_headers") or {}
    if not isinstance(raw_headers, dict):
        raise BadControlRequest("http_request_headers must be an object of name -> [values]")
    headers: list[tuple[str, str]] = []
    for name, values in raw_headers.items():
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise BadControlRequest(f"http_request_headers[{name!r}] must be a list of strings")
        if name.lower() in ("host", "content-length", "transfer-encoding", "connection"):
            continue
        if values:
            headers.append((name, values[0]))
    endpoints = data.get("tcp_connect") or []
    if not isinstance(endpoints, list) or not all(isinstance(e, str) for e in endpoints):
        raise BadControlRequest('tcp_connect must be a list of "ip:port" strings')
    if len(endpoints) > MAX_ENDPOINTS:
        raise BadControlRequest(f"tcp_connect has more than {MAX_ENDPOINTS} endpoints")
    for endpoint in endpoints:
        try:
            host, _port = split_hostport(endpoint)
            ipaddress.ip_address(host)
        except ValueError:
            raise BadControlRequest(f"tcp_connect: not an ip:port: {endpoint!r}") from None
    return ControlRequest(url, headers, list(dict.fromkeys(endpoints)))


def is_bogon(ip: str) -> bool:
    """Not a global unicast address (private, loopback, link-local, reserved, lab ranges...)."""
    return not is_global_unicast(ip)


def extract_title(body: bytes) -> str:
    """The page title as oohelperd extracts it (first <title>, at most 128 characters)."""
    match = _TITLE.search(body)
    if match is None:
        return ""
    return match.group(1).decode("utf-8", "replace").strip()[:128]


async def measure_control(
    network: Network, req: ControlRequest, *, lab_mode: bool
) -> dict[str, Any]:
    """The control answer for `req`, in OONI's field names."""
    parts = parse_url(req.http_request)
    trace = Trace(network.clock)

    dns: dict[str, Any]
    th_addrs: list[str] = []
    try:
        th_addrs = await network.resolver.lookup(parts.host, network.timeouts.dns)
        dns = {"failure": None, "addrs": th_addrs}
    except NetxFailure as exc:
        dns = {"failure": exc.failure, "addrs": []}

    endpoints = list(req.tcp_connect)
    for ip in th_addrs:
        ep = join_hostport(ip, parts.port)
        if ep not in endpoints:
            endpoints.append(ep)
    endpoints = endpoints[: MAX_ENDPOINTS * 2]

    async def one(endpoint: str) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
        ip, port = split_hostport(endpoint)
        if not lab_mode and is_bogon(ip):
            tls = (
                {"server_name": parts.host, "status": False, "failure": REFUSED_DESTINATION}
                if parts.scheme == "https"
                else None
            )
            return endpoint, {"status": False, "failure": REFUSED_DESTINATION}, tls
        result = await tcp_connect(network, trace, ip, port)
        tcp = {"status": result.failure is None, "failure": result.failure}
        if result.conn is None:
            return endpoint, tcp, None
        tls_entry: dict[str, Any] | None = None
        try:
            if parts.scheme == "https":
                hs = await tls_handshake(network, trace, result.conn, parts.host)
                tls_entry = {
                    "server_name": parts.host,
                    "status": hs.failure is None,
                    "failure": hs.failure,
                }
        finally:
            await result.conn.close()
        return endpoint, tcp, tls_entry

    async def fetch() -> dict[str, Any]:
        if dns["failure"] is not None:
            return _http(dns["failure"])
        # Non-global addresses (outside lab mode) are refused by the app's dialer.
        result = await http_fetch(network, trace, req.http_request, req.http_request_headers)
        if result.response is None or result.failure is not None:
            return _http(result.failure or failures.HTTP_REQUEST_FAILED)
        response = result.response
        headers: dict[str, str] = {}
        for name, value in response.headers:
            headers.setdefault(name, value)
        return {
            "body_length": len(response.body),
            "discovered_h3_endpoint": "",
            "failure": None,
            "title": extract_title(response.body),
            "headers": headers,
            "status_code": response.status,
        }

    results, http_request = await asyncio.gather(
        asyncio.gather(*(one(ep) for ep in endpoints)), fetch()
    )
    tcp_out: dict[str, Any] = {}
    tls_out: dict[str, Any] = {}
    for endpoint, tcp, tls in results:
        tcp_out[endpoint] = tcp
        if tls is not None:
            tls_out[endpoint] = tls

    probe_ips = {split_hostport(e)[0] for e in req.tcp_connect}
    ip_info: dict[str, Any] = {}
    for ip in dict.fromkeys([*probe_ips, *th_addrs]):
        flags = 0
        if ip in probe_ips:
            flags |= FLAG_RESOLVED_BY_PROBE
        if ip in th_addrs:
            flags |= FLAG_RESOLVED_BY_TH
        # In a lab the documentation ranges play public addresses: not bogons there.
        if is_bogon(ip) and not (lab_mode and is_lab_address(ip)):
            flags |= FLAG_IS_BOGON
        if tls_out.get(join_hostport(ip, parts.port), {}).get("status"):
            flags |= FLAG_VALID_FOR_DOMAIN
        ip_info[ip] = {"asn": 0, "flags": flags}

    return {
        "tcp_connect": tcp_out,
        "tls_handshake": tls_out,
        "quic_handshake": {},
        "http_request": http_request,
        "http3_request": None,
        "dns": dns,
        "ip_info": ip_info,
    }


def _http(failure: str) -> dict[str, Any]:
    return {
        "body_length": -1,
        "discovered_h3_endpoint": "",
        "failure": failure,
        "title": "",
        "headers": {},
        "status_code": -1,
    }
