"""Plain-socket probes the netns tests run inside the probe namespace (no dideban code).

Each returns "ok"-style data or the OONI failure string the error means, so tests read like
the expectation matrix.
"""

from __future__ import annotations

import socket
import ssl
import time

import dns.message
import dns.rcode
import dns.rdatatype


def classify(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"ssl:{exc.verify_message}"
    if isinstance(exc, ConnectionResetError):
        return "connection_reset"
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "generic_timeout_error"
    if isinstance(exc, ssl.SSLError):
        return f"ssl:{exc.reason}"
    if isinstance(exc, OSError) and exc.errno == 101:
        return "network_unreachable"
    return f"unknown:{exc!r}"


def tcp_connect(ip: str, port: int, timeout: float = 2.0) -> str:
    try:
        socket.create_connection((ip, port), timeout).close()
    except OSError as exc:
        return classify(exc)
    return "ok"


def tls_handshake(ip: str, sni: str, ca_pem: str, timeout: float = 2.0) -> str:
    ctx = ssl.create_default_context(cadata=ca_pem)
    try:
        sock = socket.create_connection((ip, 443), timeout)
    except OSError as exc:
        return "connect:" + classify(exc)
    try:
        with ctx.wrap_socket(sock, server_hostname=sni):
            return "ok"
    except OSError as exc:
        return classify(exc)
    finally:
        sock.close()


def http_get(ip: str, host: str, path: str = "/", timeout: float = 3.0) -> tuple[int, bytes] | str:
    """(status, body) of a plain-HTTP GET, or the failure string."""
    try:
        with socket.create_connection((ip, 80), timeout) as sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError as exc:
        return classify(exc)
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def timed_get(ip: str, host: str, path: str) -> tuple[float, int]:
    start = time.monotonic()
    result = http_get(ip, host, path, timeout=10)
    assert not isinstance(result, str), result
    return time.monotonic() - start, len(result[1])


def dns_replies(
    resolver: str, name: str, timeout: float = 1.5, listen: float = 0.5
) -> list[tuple[float, str, list[str]]]:
    """Every reply to one A query: (seconds after sending, rcode, addresses).

    Keeps listening `listen` seconds after the first reply, as OONI's UDP resolver does, so an
    injected reply and the true one both show up.
    """
    query = dns.message.make_query(name, dns.rdatatype.A)
    replies: list[tuple[float, str, list[str]]] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((resolver, 53))
        start = time.monotonic()
        sock.send(query.to_wire())
        deadline = start + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                wire = sock.recv(4096)
            except TimeoutError:
                break
            msg = dns.message.from_wire(wire)
            addrs = [rr.to_text() for rrset in msg.answer for rr in rrset]
            replies.append((time.monotonic() - start, dns.rcode.to_text(msg.rcode()), addrs))
            if len(replies) == 1:
                deadline = min(deadline, time.monotonic() + listen)
    return replies


def send_garbage(ip: str, port: int, payload: bytes, timeout: float = 2.0) -> str:
    try:
        with socket.create_connection((ip, port), timeout) as sock:
            sock.sendall(payload)
            time.sleep(0.1)
    except OSError as exc:
        return classify(exc)
    return "sent"


def udp_echo(ip: str, port: int, timeout: float = 1.0) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(b"\xc3\x00\x00\x00\x01quic-like", (ip, port))
        try:
            return sock.recv(100) != b""
        except TimeoutError:
            return False


def idle_then_request(ip: str, host: str, idle: float) -> str:
    """Open a connection, stay idle `idle` seconds, then send a request and read."""
    try:
        with socket.create_connection((ip, 80), 2) as sock:
            time.sleep(idle)
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            sock.settimeout(3)
            data = sock.recv(65536)
    except OSError as exc:
        return classify(exc)
    return "ok" if data.startswith(b"HTTP/1.1 200") else f"unexpected:{data[:40]!r}"
