"""Pure packet codecs for the on-path censor: parse IPv4/TCP/UDP, read SNI and Host, build RSTs.

Nothing here touches a socket: the censor daemon hands raw IP packets (as NFQUEUE gives them)
to these functions and sends what they build through a raw socket. Only IPv4 is handled: the
lab is IPv4-only.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_PSH = 0x08
TCP_ACK = 0x10

PROTO_TCP = 6
PROTO_UDP = 17


@dataclass(frozen=True)
class Packet:
    """An IPv4 TCP or UDP packet, parsed enough for the censor's decisions."""

    src: str
    dst: str
    proto: int
    sport: int
    dport: int
    payload: bytes
    seq: int = 0
    ack: int = 0
    flags: int = 0

    @property
    def flow(self) -> tuple[str, int, str, int]:
        return (self.src, self.sport, self.dst, self.dport)


def _ip(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


def _ip_bytes(text: str) -> bytes:
    return bytes(int(x) for x in text.split("."))


def parse_ipv4(data: bytes) -> Packet | None:
    """Parse an IPv4 packet carrying TCP or UDP; None for anything else or truncated input."""
    if len(data) < 20 or data[0] >> 4 != 4:
        return None
    ihl = (data[0] & 0x0F) * 4
    total = struct.unpack("!H", data[2:4])[0]
    proto = data[9]
    if ihl < 20 or total > len(data) or total < ihl:
        return None
    frag = struct.unpack("!H", data[6:8])[0]
    if frag & 0x1FFF:  # a non-first fragment has no transport header
        return None
    src, dst = _ip(data[12:16]), _ip(data[16:20])
    seg = data[ihl:total]
    if proto == PROTO_TCP:
        if len(seg) < 20:
            return None
        sport, dport, seq, ack, off_flags = struct.unpack("!HHIIH", seg[:14])
        off = (off_flags >> 12) * 4
        if off < 20 or off > len(seg):
            return None
        return Packet(src, dst, proto, sport, dport, seg[off:], seq, ack, off_flags & 0x3F)
    if proto == PROTO_UDP:
        if len(seg) < 8:
            return None
        sport, dport = struct.unpack("!HH", seg[:4])
        return Packet(src, dst, proto, sport, dport, seg[8:])
    return None


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv4_header(src: str, dst: str, proto: int, length: int, ident: int) -> bytes:
    head = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + length,
        ident & 0xFFFF,
        0x4000,  # don't fragment
        64,
        proto,
        0,
        _ip_bytes(src),
        _ip_bytes(dst),
    )
    return head[:10] + struct.pack("!H", _checksum(head)) + head[12:]


def build_tcp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    *,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
    window: int = 0,
    ident: int = 0,
) -> bytes:
    """A complete IPv4+TCP packet with valid checksums (for a raw IPPROTO_RAW socket)."""
    tcp = struct.pack(
        "!HHIIHHHH",
        sport,
        dport,
        seq & 0xFFFFFFFF,
        ack & 0xFFFFFFFF,
        (5 << 12) | flags,
        window,
        0,
        0,
    )
    pseudo = (
        _ip_bytes(src) + _ip_bytes(dst) + struct.pack("!BBH", 0, PROTO_TCP, len(tcp) + len(payload))
    )
    csum = _checksum(pseudo + tcp + payload)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    return _ipv4_header(src, dst, PROTO_TCP, len(tcp) + len(payload), ident) + tcp + payload


def build_udp(src: str, dst: str, sport: int, dport: int, payload: bytes, ident: int = 0) -> bytes:
    length = 8 + len(payload)
    udp = struct.pack("!HHHH", sport, dport, length, 0)
    pseudo = _ip_bytes(src) + _ip_bytes(dst) + struct.pack("!BBH", 0, PROTO_UDP, length)
    csum = _checksum(pseudo + udp + payload) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum)
    return _ipv4_header(src, dst, PROTO_UDP, length, ident) + udp + payload


def resets_for(pkt: Packet) -> tuple[bytes, bytes]:
    """RSTs to both ends of the TCP flow `pkt` (client -> server) belongs to.

    The server's RST carries the client's sequence number; the client's carries the sequence
    number the client acknowledged last, which is exactly its receive window's left edge, so
    the client's stack accepts it (RFC 5961 section 3.2 asks for an exact match).
    """
    to_server = build_tcp(pkt.src, pkt.dst, pkt.sport, pkt.dport, seq=pkt.seq, ack=0, flags=TCP_RST)
    to_client = build_tcp(
        pkt.dst,
        pkt.src,
        pkt.dport,
        pkt.sport,
        seq=pkt.ack,
        ack=pkt.seq + len(pkt.payload),
        flags=TCP_RST | TCP_ACK,
    )
    return to_server, to_client


def blockpage_for(pkt: Packet, response: bytes) -> tuple[bytes, bytes]:
    """An injected HTTP response (with FIN) to the client and an RST to the server."""
    to_client = build_tcp(
        pkt.dst,
        pkt.src,
        pkt.dport,
        pkt.sport,
        seq=pkt.ack,
        ack=pkt.seq + len(pkt.payload),
        flags=TCP_ACK | TCP_PSH | TCP_FIN,
        payload=response,
        window=65535,
    )
    to_server = build_tcp(pkt.src, pkt.dst, pkt.sport, pkt.dport, seq=pkt.seq, ack=0, flags=TCP_RST)
    return to_server, to_client


def tls_sni(payload: bytes) -> str | None:
    """The server_name of a TLS ClientHello in `payload` (RFC 8446 4.1.2, RFC 6066 section 3).

    Returns None when the payload is not a ClientHello or carries no SNI. A ClientHello split
    over several segments is read as far as this segment goes.
    """
    try:
        if len(payload) < 6 or payload[0] != 0x16 or payload[5] != 0x01:
            return None
        pos = 9  # record header (5) + handshake type (1) + length (3)
        pos += 2 + 32  # legacy_version, random
        pos += 1 + payload[pos]  # session id
        (n,) = struct.unpack("!H", payload[pos : pos + 2])
        pos += 2 + n  # cipher suites
        pos += 1 + payload[pos]  # compression methods
        (ext_len,) = struct.unpack("!H", payload[pos : pos + 2])
        pos += 2
        end = min(len(payload), pos + ext_len)
        while pos + 4 <= end:
            ext_type, length = struct.unpack("!HH", payload[pos : pos + 4])
            pos += 4
            if ext_type == 0:  # server_name
                # server_name_list length (2), name_type (1), host_name length (2)
                (name_len,) = struct.unpack("!H", payload[pos + 3 : pos + 5])
                name = payload[pos + 5 : pos + 5 + name_len]
                return name.decode("ascii", "replace").lower().rstrip(".")
            pos += length
    except (IndexError, struct.error):
        return None
    return None


_HOST = re.compile(rb"\r\nhost:[ \t]*([^\r\n:]+)", re.IGNORECASE)
_METHODS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"CONNECT ", b"PATCH ")


def http_host(payload: bytes) -> str | None:
    """The Host header of a plain-HTTP request in `payload`, lowercased, without port."""
    if not payload.startswith(_METHODS):
        return None
    m = _HOST.search(payload)
    if m is None:
        return None
    return m.group(1).decode("ascii", "replace").strip().lower().rstrip(".")


def _looks_like_dns(payload: bytes, *, tcp: bool) -> bool:
    if tcp:
        if len(payload) < 2 + 12:
            return False
        payload = payload[2:]
    if len(payload) < 12:
        return False
    qdcount = struct.unpack("!H", payload[4:6])[0]
    opcode = (payload[2] >> 3) & 0x0F
    return 1 <= qdcount <= 4 and opcode in (0, 2, 4, 5)


def looks_like_protocol(payload: bytes, *, tcp: bool = True) -> bool:
    """Does a client data packet fit one of the protocol filter's allowed protocols?

    Bock et al. (FOCI 2020, "Detecting and Evading Censorship-in-Depth: A Case Study of Iran's
    Protocol Filter") found that on ports 53, 80 and 443 Iran lets a flow through only when its
    first client data packets look like DNS, HTTP or TLS. These fingerprints are as coarse as
    theirs: an HTTP method token, a TLS record header, or a plausible DNS header.
    """
    if payload.startswith(_METHODS):
        return True
    if len(payload) >= 5 and payload[0] in (0x14, 0x15, 0x16, 0x17) and payload[1] == 0x03:
        return True
    return _looks_like_dns(payload, tcp=tcp)
