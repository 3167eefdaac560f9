"""dideban.measure: steps that run netx operations and record OONI archival data in a `Trace`.

Public API (stable names):
- `Trace(clock, start=None, tags=None, asn_lookup=None)`: `.queries`, `.tcp_connect`,
  `.tls_handshakes`, `.requests`, `.network_events`, `.archival()`, `.next_id()`.
- steps (async, failures returned as OONI strings in the result):
  `dns_lookup_system(network, trace, domain) -> DNSLookupResult`
  `dns_lookup_udp(network, trace, domain, resolver=None, query_types=("A","AAAA"))
      -> DNSLookupResult` (`.replies`, `.duplicates` for x_dns_duplicate_responses)
  `dns_lookup_doh(network, trace, domain, url) -> DNSLookupResult`
  `dns_lookup_tcp(network, trace, domain, resolver=None) -> DNSLookupResult`
  `tcp_connect(network, trace, ip, port) -> TCPConnectResult` (`.conn` open on success)
  `tls_handshake(network, trace, conn, server_name, alpn=..., verify=True, transaction_id=None)
      -> TLSHandshakeResult`
  `http_fetch(network, trace, url, headers=None, max_redirects=10, max_body=1 MiB)
      -> HTTPFetchResult`
- helpers: `encode_body`, `encode_headers`, `DEFAULT_HEADERS`.
"""

from __future__ import annotations

from dideban.measure.steps import (
    DEFAULT_HEADERS,
    DNSLookupResult,
    HTTPFetchResult,
    TCPConnectResult,
    TLSHandshakeResult,
    dns_lookup_doh,
    dns_lookup_system,
    dns_lookup_tcp,
    dns_lookup_udp,
    http_fetch,
    tcp_connect,
    tls_handshake,
)
from dideban.measure.trace import Trace, encode_body, encode_headers

__all__ = [
    "DEFAULT_HEADERS",
    "DNSLookupResult",
    "HTTPFetchResult",
    "TCPConnectResult",
    "TLSHandshakeResult",
    "Trace",
    "dns_lookup_doh",
    "dns_lookup_system",
    "dns_lookup_tcp",
    "dns_lookup_udp",
    "encode_body",
    "encode_headers",
    "http_fetch",
    "tcp_connect",
    "tls_handshake",
]
