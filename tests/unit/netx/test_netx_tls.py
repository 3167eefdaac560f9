"""TLS against loopback servers whose certificates come from a throwaway CA."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from netx_kit import CA, http_handler, tcp_server

from dideban.measure import Trace, tcp_connect, tls_handshake
from dideban.model import failures
from dideban.netx import make_network


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return CA(tmp_path)


async def _handshake(ca_pem: str, server: ssl.SSLContext, sni: str) -> tuple[Trace, str | None]:
    network = make_network(timeouts={"connect": 1.0, "tls": 1.0}, extra_ca_pem=ca_pem)
    trace = Trace(network.clock)
    async with tcp_server(http_handler({}), server) as port:
        conn = await tcp_connect(network, trace, "127.0.0.1", port)
        assert conn.conn is not None, conn.failure
        try:
            result = await tls_handshake(
                network, trace, conn.conn, sni, transaction_id=conn.transaction_id
            )
        finally:
            await conn.conn.close()
    return trace, result.failure


async def test_good_handshake_records_version_cipher_alpn_and_chain(ca: CA) -> None:
    trace, failure = await _handshake(ca.pem, ca.server_context(["site.example"]), "site.example")
    assert failure is None
    (record,) = trace.tls_handshakes
    assert record["tls_version"] in ("TLSv1.3", "TLSv1.2")
    assert record["cipher_suite"].startswith("TLS_")
    assert record["negotiated_protocol"] == "http/1.1"
    assert record["server_name"] == "site.example"
    assert record["address"].startswith("127.0.0.1:")
    assert record["no_tls_verify"] is False and record["failure"] is None
    assert len(record["peer_certificates"]) == 2  # leaf, then the CA the server sent
    ca_der = base64.b64decode(record["peer_certificates"][1]["data"])
    assert x509.load_der_x509_certificate(ca_der) == ca.ca.cert
    leaf = record["peer_certificates"][0]
    assert leaf["format"] == "base64"
    cert = x509.load_der_x509_certificate(base64.b64decode(leaf["data"]))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["site.example"]
    assert record["transaction_id"] == trace.tcp_connect[0]["transaction_id"]
    assert [e["operation"] for e in trace.network_events] == ["connect", "tls_handshake_done"]


async def test_wrong_name_is_ssl_invalid_hostname(ca: CA) -> None:
    _, failure = await _handshake(ca.pem, ca.server_context(["other.example"]), "site.example")
    assert failure == failures.SSL_INVALID_HOSTNAME


async def test_unknown_ca_is_ssl_unknown_authority(ca: CA) -> None:
    _, failure = await _handshake("", ca.server_context(["site.example"]), "site.example")
    assert failure == failures.SSL_UNKNOWN_AUTHORITY


async def test_expired_certificate_is_ssl_invalid_certificate(ca: CA) -> None:
    server = ca.server_context(["site.example"], expired=True)
    trace, failure = await _handshake(ca.pem, server, "site.example")
    assert failure == failures.SSL_INVALID_CERTIFICATE
    assert trace.tls_handshakes[0]["peer_certificates"] == []
    assert trace.tls_handshakes[0]["tls_version"] == ""


async def test_server_that_resets_during_handshake(ca: CA) -> None:
    from netx_kit import linger_zero

    async def reset(reader, writer):  # type: ignore[no-untyped-def]
        await reader.read(10)
        linger_zero(writer)
        writer.transport.abort()

    network = make_network(timeouts={"connect": 1.0, "tls": 1.0}, extra_ca_pem=ca.pem)
    trace = Trace(network.clock)
    async with tcp_server(reset) as port:
        conn = await tcp_connect(network, trace, "127.0.0.1", port)
        assert conn.conn is not None
        result = await tls_handshake(network, trace, conn.conn, "site.example")
        await conn.conn.close()
    assert result.failure in (failures.CONNECTION_RESET, failures.EOF_ERROR)


async def test_stalled_handshake_times_out_and_the_connection_is_aborted() -> None:
    import asyncio

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    network = make_network(timeouts={"connect": 1.0, "tls": 0.2})
    trace = Trace(network.clock)
    async with tcp_server(stall) as port:
        conn = await tcp_connect(network, trace, "127.0.0.1", port)
        assert conn.conn is not None
        result = await tls_handshake(network, trace, conn.conn, "site.example")
        assert result.failure == failures.GENERIC_TIMEOUT_ERROR
        # A failed connection is marked broken, and closing it aborts at once (no wait for a
        # peer that will never answer the TLS close).
        assert conn.conn.broken
        await conn.conn.close()
        assert conn.conn.writer.transport.is_closing()
