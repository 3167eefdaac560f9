"""Failure classification: foreign exceptions -> OONI failure strings, once, at the boundary.

`classify(exc)` is the single place where socket/ssl/DNS/h11 exceptions become
`dideban.model.failures` strings (df-007-errors). Everything above netx sees `NetxFailure`
(carrying that string) or a result whose `failure` field holds it.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl

import h11

from dideban.model import failures


class NetxFailure(Exception):
    """A network operation failed; `failure` is the OONI failure string."""

    def __init__(self, failure: str) -> None:
        super().__init__(failure)
        self.failure = failure


_ERRNO: dict[int, str] = {
    errno.ECONNREFUSED: failures.CONNECTION_REFUSED,
    errno.ECONNRESET: failures.CONNECTION_RESET,
    errno.ECONNABORTED: failures.CONNECTION_ABORTED,
    errno.EPIPE: failures.CONNECTION_RESET,
    errno.EHOSTUNREACH: failures.HOST_UNREACHABLE,
    errno.ENETUNREACH: failures.NETWORK_UNREACHABLE,
    errno.ETIMEDOUT: failures.GENERIC_TIMEOUT_ERROR,
    errno.EINTR: failures.INTERRUPTED,
}

# getaddrinfo error codes (EAI_*) -> OONI DNS failures.
_GAI: dict[int, str] = {
    socket.EAI_NONAME: failures.DNS_NXDOMAIN_ERROR,
    socket.EAI_AGAIN: failures.DNS_TEMPORARY_FAILURE,
    socket.EAI_FAIL: failures.DNS_NON_RECOVERABLE_FAILURE,
}
_EAI_NODATA = getattr(socket, "EAI_NODATA", None)
if _EAI_NODATA is not None:
    _GAI[_EAI_NODATA] = failures.DNS_NO_ANSWER

# OpenSSL X509_V_ERR_* codes (x509_vfy.h) -> OONI TLS failures.
_X509_HOSTNAME_MISMATCH = 62
_X509_IP_MISMATCH = 64
_X509_UNKNOWN_AUTHORITY = {
    2,  # unable to get issuer certificate
    18,  # depth zero self-signed certificate
    19,  # self-signed certificate in chain
    20,  # unable to get local issuer certificate
    21,  # unable to verify the first certificate
}


def classify_tls(exc: ssl.SSLError) -> str:
    """OONI string for an ssl error raised by a handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        if code in (_X509_HOSTNAME_MISMATCH, _X509_IP_MISMATCH):
            return failures.SSL_INVALID_HOSTNAME
        if code in _X509_UNKNOWN_AUTHORITY:
            return failures.SSL_UNKNOWN_AUTHORITY
        return failures.SSL_INVALID_CERTIFICATE
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return failures.EOF_ERROR
    text = str(exc).lower()
    if "reset" in text:
        return failures.CONNECTION_RESET
    return failures.SSL_FAILED_HANDSHAKE


def classify(exc: BaseException) -> str:
    """The OONI failure string for `exc` (unknown errors: `unknown_failure: <scrubbed>`)."""
    if isinstance(exc, NetxFailure):
        return exc.failure
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | socket.timeout):
        return failures.GENERIC_TIMEOUT_ERROR
    if isinstance(exc, socket.gaierror):
        return _GAI.get(exc.errno or 0, failures.unknown_failure(str(exc)))
    if isinstance(exc, ssl.SSLError):
        return classify_tls(exc)
    if isinstance(exc, asyncio.IncompleteReadError | EOFError):
        return failures.EOF_ERROR
    if isinstance(exc, ConnectionRefusedError):
        return failures.CONNECTION_REFUSED
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return failures.CONNECTION_RESET
    if isinstance(exc, ConnectionAbortedError):
        return failures.CONNECTION_ABORTED
    if isinstance(exc, OSError) and exc.errno in _ERRNO:
        return _ERRNO[exc.errno]
    if isinstance(exc, h11.RemoteProtocolError):
        return failures.unknown_failure(f"http protocol error: {exc}")
    return failures.unknown_failure(f"{type(exc).__name__}: {exc}")
