"""What the censor reads from a flow's first bytes: the TLS ClientHello SNI, the HTTP Host.

Pure parsers over bytes, so the censor's decisions are testable without sockets. Each returns
`NEED_MORE` while the bytes seen so far are a valid prefix, `NOT_THIS` when they cannot be the
protocol, else the name ("" when the protocol is right but carries no name).
"""

from __future__ import annotations

from typing import Final

NEED_MORE: Final = "\x00need-more"
NOT_THIS: Final = "\x00not-this"

# A ClientHello larger than this is not something the lab needs to understand.
MAX_CLIENT_HELLO = 64 * 1024
MAX_HTTP_HEAD = 64 * 1024


def _handshake_bytes(data: bytes) -> tuple[bytes, bool] | None:
    """Concatenate the payloads of the leading TLS handshake records (RFC 8446 §5.1: a
    handshake message may be fragmented over several records). Returns (payload, all records
    complete) or None if the data is not TLS handshake records."""
    out = bytearray()
    pos = 0
    while pos < len(data):
        if len(data) - pos < 5:
            return bytes(out), False
        ctype, major = data[pos], data[pos + 1]
        if ctype != 0x16 or major != 3:
            return None if pos == 0 else (bytes(out), True)
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        if length == 0 or length > 2**14 + 2048:
            return None
        if len(data) - pos - 5 < length:
            out += data[pos + 5 :]
            return bytes(out), False
        out += data[pos + 5 : pos + 5 + length]
        pos += 5 + length
    return bytes(out), True


def client_hello_sni(data: bytes) -> str:
    """The server_name (RFC 6066 §3) of the ClientHello at the start of `data`."""
    if data and data[0] != 0x16:
        return NOT_THIS
    hs = _handshake_bytes(data)
    if hs is None:
        return NOT_THIS
    payload, _complete = hs
    if len(payload) < 4:
        return NEED_MORE if len(data) < MAX_CLIENT_HELLO else NOT_THIS
    if payload[0] != 0x01:  # ClientHello
        return NOT_THIS
    hello_len = int.from_bytes(payload[1:4], "big")
    if len(payload) < 4 + hello_len:
        return NEED_MORE if len(data) < MAX_CLIENT_HELLO else NOT_THIS
    body = payload[4 : 4 + hello_len]
    try:
        return _sni_from_hello_body(body)
    except IndexError:
        return NOT_THIS


def _sni_from_hello_body(body: bytes) -> str:
    # legacy_version(2) random(32) session_id<0..32> cipher_suites<2..> compression<1..>
    pos = 2 + 32
    pos += 1 + body[pos]
    pos += 2 + int.from_bytes(body[pos : pos + 2], "big")
    pos += 1 + body[pos]
    if pos >= len(body):
        return ""  # no extensions
    end = pos + 2 + int.from_bytes(body[pos : pos + 2], "big")
    if end > len(body):
        return NOT_THIS
    pos += 2
    while pos + 4 <= end:
        ext_type = int.from_bytes(body[pos : pos + 2], "big")
        ext_len = int.from_bytes(body[pos + 2 : pos + 4], "big")
        ext = body[pos + 4 : pos + 4 + ext_len]
        pos += 4 + ext_len
        if ext_type != 0:
            continue
        # ServerNameList<1..2^16-1>; entries: name_type(1) HostName<1..2^16-1>
        i = 2
        list_end = 2 + int.from_bytes(ext[0:2], "big")
        while i + 3 <= list_end:
            name_type = ext[i]
            n = int.from_bytes(ext[i + 1 : i + 3], "big")
            name = ext[i + 3 : i + 3 + n]
            i += 3 + n
            if name_type == 0:
                return name.decode("ascii", "replace").lower().rstrip(".")
        return ""
    return ""


_METHODS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"CONNECT ")


def http_host(data: bytes) -> str:
    """The Host header (lower-cased, port removed) of the HTTP/1.x request head in `data`."""
    prefix = data[:8]
    if not any(m.startswith(prefix[: len(m)]) or prefix.startswith(m) for m in _METHODS):
        return NOT_THIS
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return NEED_MORE if len(data) < MAX_HTTP_HEAD else NOT_THIS
    for line in data[:end].split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"host":
            host = value.strip().decode("ascii", "replace").lower()
            if host.startswith("["):
                return host[1:].split("]", 1)[0]
            return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return ""
