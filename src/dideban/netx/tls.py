"""TLS handshake over an existing connection, with a chosen SNI and ALPN."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

from dideban.netx.errors import NetxFailure, classify
from dideban.netx.network import Conn, Network

# OpenSSL names of common TLS 1.2 suites -> the IANA names OONI records. TLS 1.3 suites
# already carry their IANA names in OpenSSL.
_IANA = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}


_DER = 2  # _ssl.ENCODING_DER


@dataclass(frozen=True)
class TLSInfo:
    """A completed handshake: `tls_version` e.g. "TLSv1.3", `cipher_suite` (IANA name),
    `negotiated_protocol` (ALPN, "" if none), `peer_certificates` DER as the peer sent
    them, leaf first (only the leaf if the chain getter is unavailable)."""

    tls_version: str
    cipher_suite: str
    negotiated_protocol: str
    peer_certificates: list[bytes] = field(default_factory=list)


def _chain(obj: ssl.SSLObject) -> list[bytes]:
    # The public getter arrived in 3.13; 3.10-3.12 have it on the private _ssl object.
    getter = getattr(obj, "get_unverified_chain", None) or getattr(
        getattr(obj, "_sslobj", None), "get_unverified_chain", None
    )
    if getter is not None:
        try:
            chain = getter() or []
            return [c if isinstance(c, bytes) else c.public_bytes(_DER) for c in chain]
        except (ssl.SSLError, AttributeError, TypeError, ValueError):
            pass
    leaf = obj.getpeercert(binary_form=True)
    return [leaf] if leaf else []


async def tls_handshake(
    network: Network,
    conn: Conn,
    server_name: str,
    *,
    alpn: tuple[str, ...] = ("http/1.1",),
    verify: bool = True,
    timeout: float | None = None,
) -> TLSInfo:
    """Upgrade `conn` in place to TLS with SNI `server_name` (verified against the network's
    trust unless `verify` is False). Returns the `TLSInfo`; raises `NetxFailure` with
    ssl_invalid_hostname / ssl_unknown_authority / ssl_invalid_certificate /
    ssl_failed_handshake / connection_reset / eof_error / generic_timeout_error."""
    ctx = network.tls_context(verify=verify, alpn=alpn)
    timeout = network.timeouts.tls if timeout is None else timeout
    try:
        async with asyncio.timeout(timeout):
            await conn.writer.start_tls(ctx, server_hostname=server_name or None)
    except Exception as exc:
        conn.broken = True
        raise NetxFailure(classify(exc)) from exc
    obj = conn.writer.get_extra_info("ssl_object")
    if not isinstance(obj, ssl.SSLObject):
        raise NetxFailure("unknown_failure: no TLS object after handshake")
    cipher = obj.cipher()
    name = cipher[0] if cipher else ""
    return TLSInfo(
        tls_version=obj.version() or "",
        cipher_suite=_IANA.get(name, name),
        negotiated_protocol=obj.selected_alpn_protocol() or "",
        peer_certificates=_chain(obj),
    )
