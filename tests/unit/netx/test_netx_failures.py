"""Failure classification: one table from exceptions to OONI strings."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl

import h11
import pytest

from dideban.model import failures
from dideban.netx import NetxFailure, classify


def _verify_error(code: int) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_code = code
    exc.verify_message = "x"
    return exc


CASES: list[tuple[BaseException, str]] = [
    (TimeoutError(), failures.GENERIC_TIMEOUT_ERROR),
    (TimeoutError(), failures.GENERIC_TIMEOUT_ERROR),
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), failures.CONNECTION_REFUSED),
    (ConnectionResetError(errno.ECONNRESET, "reset"), failures.CONNECTION_RESET),
    (BrokenPipeError(errno.EPIPE, "pipe"), failures.CONNECTION_RESET),
    (ConnectionAbortedError(errno.ECONNABORTED, "aborted"), failures.CONNECTION_ABORTED),
    (OSError(errno.ENETUNREACH, "unreachable"), failures.NETWORK_UNREACHABLE),
    (OSError(errno.EHOSTUNREACH, "no route"), failures.HOST_UNREACHABLE),
    (OSError(errno.ETIMEDOUT, "timed out"), failures.GENERIC_TIMEOUT_ERROR),
    (asyncio.IncompleteReadError(b"", 10), failures.EOF_ERROR),
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), failures.DNS_NXDOMAIN_ERROR),
    (socket.gaierror(socket.EAI_AGAIN, "Temporary failure"), failures.DNS_TEMPORARY_FAILURE),
    (_verify_error(62), failures.SSL_INVALID_HOSTNAME),
    (_verify_error(20), failures.SSL_UNKNOWN_AUTHORITY),
    (_verify_error(18), failures.SSL_UNKNOWN_AUTHORITY),
    (_verify_error(10), failures.SSL_INVALID_CERTIFICATE),
    (ssl.SSLEOFError(8, "EOF occurred"), failures.EOF_ERROR),
    (ssl.SSLError(1, "sslv3 alert handshake failure"), failures.SSL_FAILED_HANDSHAKE),
    (NetxFailure(failures.DNS_SERVFAIL_ERROR), failures.DNS_SERVFAIL_ERROR),
]


@pytest.mark.parametrize(("exc", "expected"), CASES, ids=[type(e).__name__ for e, _ in CASES])
def test_classification_table(exc: BaseException, expected: str) -> None:
    assert classify(exc) == expected


def test_unknown_errors_are_unknown_failure_with_addresses_scrubbed() -> None:
    got = classify(ValueError("weird thing from 10.10.34.35:443 and [2001:db8::1]:80"))
    assert got.startswith("unknown_failure: ValueError")
    assert "10.10.34.35" not in got and "2001:db8" not in got
    assert failures.is_known(got)


def test_http_protocol_error_is_unknown_failure() -> None:
    got = classify(h11.RemoteProtocolError("illegal status line"))
    assert got.startswith("unknown_failure: http protocol error")


def test_every_classified_string_is_in_the_vocabulary() -> None:
    for exc, _ in CASES:
        assert failures.is_known(classify(exc))
