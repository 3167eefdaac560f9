"""OONI's closed vocabulary of network failure strings (df-007-errors).

Every failed network operation is recorded with one of these strings and the operation it
failed in; nothing else. Classification from exceptions happens once, in `dideban.netx`.
Unknown errors become `unknown_failure: <text>` with addresses scrubbed (see `unknown_failure`).
"""

from __future__ import annotations

import re
from typing import Final

# Generic / socket level
GENERIC_TIMEOUT_ERROR: Final = "generic_timeout_error"
CONNECTION_RESET: Final = "connection_reset"
CONNECTION_REFUSED: Final = "connection_refused"
CONNECTION_ABORTED: Final = "connection_aborted"
HOST_UNREACHABLE: Final = "host_unreachable"
NETWORK_UNREACHABLE: Final = "network_unreachable"
EOF_ERROR: Final = "eof_error"
INTERRUPTED: Final = "interrupted"

# DNS
DNS_NXDOMAIN_ERROR: Final = "dns_nxdomain_error"
DNS_SERVFAIL_ERROR: Final = "dns_servfail_error"
DNS_REFUSED_ERROR: Final = "dns_refused_error"
DNS_NO_ANSWER: Final = "dns_no_answer"
DNS_BOGON_ERROR: Final = "dns_bogon_error"
DNS_NON_RECOVERABLE_FAILURE: Final = "dns_non_recoverable_failure"
DNS_TEMPORARY_FAILURE: Final = "dns_temporary_failure"

# TLS
SSL_INVALID_HOSTNAME: Final = "ssl_invalid_hostname"
SSL_UNKNOWN_AUTHORITY: Final = "ssl_unknown_authority"
SSL_INVALID_CERTIFICATE: Final = "ssl_invalid_certificate"
SSL_FAILED_HANDSHAKE: Final = "ssl_failed_handshake"

# HTTP
HTTP_UNEXPECTED_STATUS_CODE: Final = "http_unexpected_status_code"
HTTP_UNEXPECTED_REDIRECT_URL: Final = "http_unexpected_redirect_url"
HTTP_INVALID_REDIRECT_LOCATION_HOST: Final = "http_invalid_redirect_location_host"
HTTP_TOO_MANY_REDIRECTS: Final = "http_too_many_redirects"  # dideban: more than 10 redirects
HTTP_REQUEST_FAILED: Final = "http_request_failed"

# Lab: a destination the lab dialer will not dial (never a socket, see netx lab dialer)
LAB_DESTINATION_REFUSED: Final = "unknown_failure: lab dialer refused destination"

KNOWN_FAILURES: Final[frozenset[str]] = frozenset(
    {
        GENERIC_TIMEOUT_ERROR,
        CONNECTION_RESET,
        CONNECTION_REFUSED,
        CONNECTION_ABORTED,
        HOST_UNREACHABLE,
        NETWORK_UNREACHABLE,
        EOF_ERROR,
        INTERRUPTED,
        DNS_NXDOMAIN_ERROR,
        DNS_SERVFAIL_ERROR,
        DNS_REFUSED_ERROR,
        DNS_NO_ANSWER,
        DNS_BOGON_ERROR,
        DNS_NON_RECOVERABLE_FAILURE,
        DNS_TEMPORARY_FAILURE,
        SSL_INVALID_HOSTNAME,
        SSL_UNKNOWN_AUTHORITY,
        SSL_INVALID_CERTIFICATE,
        SSL_FAILED_HANDSHAKE,
        HTTP_UNEXPECTED_STATUS_CODE,
        HTTP_UNEXPECTED_REDIRECT_URL,
        HTTP_INVALID_REDIRECT_LOCATION_HOST,
        HTTP_TOO_MANY_REDIRECTS,
        HTTP_REQUEST_FAILED,
    }
)

_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b")
_IPV6 = re.compile(r"\[?\b(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}\b\]?(?::\d+)?")


def scrub_addresses(text: str) -> str:
    """Replace every IPv4/IPv6 address (with optional port) in `text` by `[scrubbed]`."""
    return _IPV6.sub("[scrubbed]", _IPV4.sub("[scrubbed]", text))


def unknown_failure(text: str) -> str:
    """The OONI string for an error outside the vocabulary, with addresses scrubbed."""
    return "unknown_failure: " + scrub_addresses(text)


def is_known(failure: str) -> bool:
    return failure in KNOWN_FAILURES or failure.startswith("unknown_failure")
