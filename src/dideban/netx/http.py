"""HTTP/1.1 with h11 over our own connections; pure redirect resolution; a small API client.

`http_roundtrip` performs one exchange on an open `Conn` (TCP or TLS) and caps the body
snapshot (OONI's `body_is_truncated`). Redirects are resolved by the pure `next_location`,
tested without sockets; the hop loop with per-hop recording lives in `dideban.measure`.
`api_request` is the plain client for API calls (test helper control, DoH, collector).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import h11

from dideban.model import failures
from dideban.netx.errors import NetxFailure, classify
from dideban.netx.network import Conn, Network, is_ip

MAX_BODY = 1 << 20  # 1 MiB, as OONI's body snapshot
MAX_REDIRECTS = 10
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class URLParts:
    """A parsed http(s) URL: `host` without brackets, `port` explicit or default, `target` the
    request target (path + query, at least "/")."""

    scheme: str
    host: str
    port: int
    target: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_url(url: str) -> URLParts:
    """Split an http(s) URL; raises ValueError for anything else."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"URL without host: {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return URLParts(scheme, host, port, target)


def next_location(url: str, status: int, headers: list[tuple[str, str]]) -> str | None:
    """Where a response redirects to: the absolute URL of its Location for a 301/302/303/307/
    308, else None. Raises `NetxFailure(http_invalid_redirect_location_host)` for a Location
    that is not an http(s) URL with a host."""
    if status not in REDIRECT_CODES:
        return None
    location = next((v for k, v in headers if k.lower() == "location"), None)
    if location is None or not location.strip():
        return None
    absolute = urljoin(url, location.strip())
    try:
        parse_url(absolute)
    except ValueError:
        raise NetxFailure(failures.HTTP_INVALID_REDIRECT_LOCATION_HOST) from None
    # The fragment is the client's business, never sent.
    return absolute.split("#", 1)[0]


def redirect_chain(
    start: str, responses: dict[str, tuple[int, list[tuple[str, str]]]], limit: int = MAX_REDIRECTS
) -> list[str]:
    """The URLs visited following redirects from `start`, given each URL's (status, headers):
    a pure model of `dideban.measure.http_fetch`'s loop. Raises `NetxFailure` with
    http_too_many_redirects after `limit` redirects."""
    chain = [start]
    url = start
    while url in responses:
        status, headers = responses[url]
        nxt = next_location(url, status, headers)
        if nxt is None:
            break
        if len(chain) > limit:
            raise NetxFailure(failures.HTTP_TOO_MANY_REDIRECTS)
        chain.append(nxt)
        url = nxt
    return chain


def set_cookies(headers: list[tuple[str, str]]) -> dict[str, str]:
    """The name=value pairs a response's Set-Cookie headers set (attributes ignored)."""
    jar: dict[str, str] = {}
    for name, value in headers:
        if name.lower() != "set-cookie":
            continue
        pair = value.split(";", 1)[0]
        key, sep, val = pair.partition("=")
        if sep and key.strip():
            jar[key.strip()] = val.strip()
    return jar


@dataclass(frozen=True)
class HTTPResponse:
    """One response: `headers` as received, in order; `body` at most the cap, with
    `body_is_truncated` when more was sent."""

    status: int
    reason: str
    http_version: str
    headers: list[tuple[str, str]]
    body: bytes
    body_is_truncated: bool


async def http_roundtrip(
    conn: Conn,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes = b"",
    *,
    timeout: float,
    max_body: int = MAX_BODY,
) -> HTTPResponse:
    """Send one request on `conn` (headers in the given order, a Host header included by the
    caller) and read the response, keeping at most `max_body` bytes of body. `timeout` bounds
    each read. Raises `NetxFailure` (eof_error, connection_reset, generic_timeout_error, ...)."""
    h = h11.Connection(h11.CLIENT)
    send = list(headers)
    if body and not any(k.lower() == "content-length" for k, _ in send):
        send.append(("Content-Length", str(len(body))))
    eof = False
    try:
        data = h.send(h11.Request(method=method, target=target, headers=send))
        if body:
            data += h.send(h11.Data(data=body))
        data += h.send(h11.EndOfMessage())
        loop = asyncio.get_running_loop()
        response: h11.Response | None = None
        chunks: list[bytes] = []
        size = 0
        truncated = False
        # One timer for the exchange (a deadline: `timeout_at`), pushed back before each
        # read: cheaper than a wait_for per read, same per-operation semantics.
        async with asyncio.timeout_at(loop.time() + timeout) as deadline:
            conn.writer.write(data)
            await conn.writer.drain()
            while True:
                event = h.next_event()
                if event is h11.NEED_DATA:
                    deadline.reschedule(loop.time() + timeout)
                    raw = await conn.reader.read(65536)
                    if not raw and response is None:
                        raise NetxFailure(failures.EOF_ERROR)
                    h.receive_data(raw)
                    eof = not raw
                    continue
                if isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    room = max_body - size
                    if len(event.data) > room:
                        chunks.append(bytes(event.data[:room]))
                        truncated = True
                        conn.broken = True  # the rest of the body is not read
                        break
                    chunks.append(bytes(event.data))
                    size += len(event.data)
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
    except NetxFailure:
        conn.broken = True
        raise
    except h11.RemoteProtocolError as exc:
        conn.broken = True
        # The peer closed in the middle of the body: OONI's eof_error.
        raise NetxFailure(failures.EOF_ERROR if eof else classify(exc)) from exc
    except Exception as exc:
        conn.broken = True
        raise NetxFailure(classify(exc)) from exc
    if response is None:
        raise NetxFailure(failures.EOF_ERROR)
    return HTTPResponse(
        status=response.status_code,
        reason=response.reason.decode("latin-1"),
        http_version=response.http_version.decode("ascii"),
        headers=[
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw_items()
        ],
        body=b"".join(chunks),
        body_is_truncated=truncated,
    )


@dataclass(frozen=True)
class APIResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON; raises ValueError when it is not."""
        return json.loads(self.body)


async def connect_url(
    network: Network, parts: URLParts, *, measurement_dialer: bool, timeout: float
) -> Conn:
    """Resolve (system resolver of `network`), connect (first address that works) and, for
    https, handshake with SNI = host. Raises `NetxFailure`."""
    from dideban.netx.tls import tls_handshake

    if is_ip(parts.host) or parts.host == "localhost":
        addrs = ["127.0.0.1"] if parts.host == "localhost" else [parts.host]
    else:
        addrs = await network.resolver.lookup(parts.host, network.timeouts.dns)
    dialer = network.dialer if measurement_dialer else network.api_dialer
    last: NetxFailure | None = None
    for ip in addrs:
        try:
            conn = await dialer.dial(ip, parts.port, network.timeouts.connect)
        except NetxFailure as exc:
            last = exc
            continue
        if parts.scheme == "https":
            try:
                await tls_handshake(network, conn, parts.host, timeout=timeout)
            except NetxFailure:
                await conn.close()
                raise
        return conn
    assert last is not None
    raise last


async def api_request(
    network: Network,
    method: str,
    url: str,
    *,
    body: bytes = b"",
    json_body: Any = None,
    headers: list[tuple[str, str]] | None = None,
    timeout: float | None = None,
    max_body: int = 16 << 20,
    measurement_dialer: bool = False,
) -> APIResponse:
    """A plain HTTP/1.1 call (one connection, closed after). `json_body` is serialised with
    Content-Type application/json. In a lab, loopback URLs are dialled directly and other
    destinations through the lab dialer (`measurement_dialer=True`: lab dialer only).
    Returns the `APIResponse` whatever its status; raises `NetxFailure` on network failure."""
    parts = parse_url(url)
    timeout = network.timeouts.http if timeout is None else timeout
    send = [("Host", parts.host_header)]
    if json_body is not None:
        body = json.dumps(json_body).encode()
        send.append(("Content-Type", "application/json"))
    send.extend(headers or [])
    send.append(("Connection", "close"))
    conn = await connect_url(network, parts, measurement_dialer=measurement_dialer, timeout=timeout)
    try:
        resp = await http_roundtrip(
            conn, method, parts.target, send, body, timeout=timeout, max_body=max_body
        )
    finally:
        await conn.close()
    if resp.body_is_truncated:
        raise NetxFailure(failures.unknown_failure("api response over the size cap"))
    return APIResponse(resp.status, resp.headers, resp.body)
