"""dideban.netx: the only code that touches sockets, TLS and DNS transports.

Public API (stable names):
- `make_network(lab=None, side="probe", timeouts=None)` -> `Network` (network.py)
- `Timeouts`, `Network`, `Conn`, `LabDialer`, `SocketDialer`, `split_hostport`, `join_hostport`
- `NetxFailure`, `classify(exc) -> str` (errors.py)
- clocks: `Clock`, `MonotonicClock`, `FakeClock` (clock.py)
- DNS: `build_query`, `parse_reply`, `udp_exchange`, `tcp_exchange`, `doh_exchange`, `Answer`, `ParsedReply`,
  `Reply` (dns.py)
- TLS: `tls_handshake`, `TLSInfo` (tls.py)
- HTTP: `parse_url`, `next_location`, `http_roundtrip`, `HTTPResponse`, `api_request`,
  `APIResponse` (http.py)
"""

from __future__ import annotations

from dideban.netx.clock import Clock, FakeClock, MonotonicClock
from dideban.netx.dns import (
    Answer,
    ParsedReply,
    Reply,
    build_query,
    doh_exchange,
    parse_reply,
    tcp_exchange,
    udp_exchange,
)
from dideban.netx.errors import NetxFailure, classify
from dideban.netx.http import (
    MAX_BODY,
    MAX_REDIRECTS,
    APIResponse,
    HTTPResponse,
    URLParts,
    api_request,
    http_roundtrip,
    next_location,
    parse_url,
    set_cookies,
)
from dideban.netx.network import (
    Conn,
    LabDialer,
    Network,
    SocketDialer,
    Timeouts,
    join_hostport,
    make_network,
    split_hostport,
)
from dideban.netx.tls import TLSInfo, tls_handshake

__all__ = [
    "MAX_BODY",
    "MAX_REDIRECTS",
    "APIResponse",
    "Answer",
    "Clock",
    "Conn",
    "FakeClock",
    "HTTPResponse",
    "LabDialer",
    "MonotonicClock",
    "Network",
    "NetxFailure",
    "ParsedReply",
    "Reply",
    "SocketDialer",
    "TLSInfo",
    "Timeouts",
    "URLParts",
    "api_request",
    "build_query",
    "classify",
    "doh_exchange",
    "http_roundtrip",
    "join_hostport",
    "make_network",
    "next_location",
    "parse_reply",
    "parse_url",
    "set_cookies",
    "split_hostport",
    "tcp_exchange",
    "tls_handshake",
    "udp_exchange",
]
