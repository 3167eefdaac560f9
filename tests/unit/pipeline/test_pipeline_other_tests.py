"""Scoring of the tests without a real sample for every outcome: synthetic measurements in
OONI's shape, one per rule outcome."""

from __future__ import annotations

from typing import Any

import pytest

from dideban.model.verdict import Verdict
from dideban.pipeline.analysis import analyze
from dideban.pipeline.fingerprints import default_db
from dideban.pipeline.readers import RawMeasurement, measurement_of


def verdict(test_name: str, tk: dict[str, Any] | None, **env: Any) -> Verdict:
    doc = {"test_name": test_name, "probe_cc": "IR", "probe_asn": "AS1", "test_keys": tk, **env}
    raw = measurement_of(doc, "mem", None, None)
    assert isinstance(raw, RawMeasurement)
    return analyze(raw, default_db()).verdict


def tcp(ip: str, port: int, failure: str | None) -> dict[str, Any]:
    return {"ip": ip, "port": port, "status": {"failure": failure, "success": failure is None}}


@pytest.mark.parametrize(
    ("test_name", "tk", "rule", "blocking_type"),
    [
        ("dnscheck", {"bootstrap_failure": "dns_nxdomain_error"}, "dnscheck.bootstrap", None),
        ("dnscheck", {"lookups": {"a": {"failure": "generic_timeout_error"}, "b": {"failure": "eof_error"}}}, "dnscheck.all_failed", "dns"),
        ("dnscheck", {"lookups": {"a": {"failure": None}, "b": {"failure": "eof_error"}}}, "dnscheck.catchall", None),
        ("stunreachability", {"failure": "generic_timeout_error", "queries": []}, "stun.failed", "tcp_ip"),
        ("stunreachability", {"failure": "dns_nxdomain_error", "queries": [{"hostname": "stun.x", "failure": "dns_nxdomain_error"}]}, "stun.dns", "dns"),
        ("stunreachability", {"failure": None}, "stun.catchall", None),
        ("telegram", {"tcp_connect": [tcp("198.18.0.1", 443, "generic_timeout_error"), tcp("198.18.0.2", 443, "connection_reset")]}, "im.tcp", "tcp_ip"),
        ("telegram", {"tcp_connect": [tcp("198.18.0.1", 443, None), tcp("198.18.0.1", 80, "connection_reset")]}, "im.tcp", "tcp_ip"),
        ("facebook_messenger", {"tcp_connect": [tcp("198.18.0.1", 443, None)], "queries": [{"hostname": "b-api.facebook.com", "failure": "dns_nxdomain_error"}]}, "im.dns", "dns"),
        ("whatsapp", {"requests": [{"request": {"url": "https://v.whatsapp.net/v2/register"}, "failure": "connection_reset"}]}, "whatsapp.registration", "http-failure"),
        ("whatsapp", {"requests": [{"request": {"url": "https://web.whatsapp.com/"}, "failure": "connection_reset"}]}, "im.catchall", None),
        ("signal", {"tls_handshakes": [{"address": "198.18.0.1:443", "failure": "connection_reset"}]}, "im.tls", "tls"),
        ("tor", {"targets": {"a": {"failure": "generic_timeout_error"}, "b": {"failure": "connection_refused"}, "c": {"failure": None}}}, "tor.blocked", "tcp_ip"),
        ("vanilla_tor", {"failure": None, "success": True}, "torboot.catchall", None),
        ("http_header_field_manipulation", {"tampering": {"header_field_name": True, "total": True}, "requests": [{"request": {}, "failure": None}]}, "hhfm.tampering", None),
        ("http_invalid_request_line", {"tampering": False}, "hirl.catchall", None),
        ("dash", {"simple": {}}, "generic.unsupported", None),
    ],
)  # fmt: skip
def test_rule_outcomes(
    test_name: str, tk: dict[str, Any], rule: str, blocking_type: str | None
) -> None:
    v = verdict(test_name, tk)
    assert v.rules == [rule]
    assert v.blocking_type == blocking_type
    assert v.anomaly == (
        rule.split(".")[-1] not in ("catchall", "bootstrap", "unsupported") and not v.failure
    )


def test_null_test_keys_of_a_messenger_is_a_failure() -> None:
    v = verdict("signal", None)
    assert v.failure and v.rules == ["im.no_test_keys"]


def test_hhfm_tampering_is_an_anomaly_without_a_blocking_type() -> None:
    v = verdict(
        "http_header_field_manipulation", {"tampering": {"header_name_capitalization": True}}
    )
    assert v.anomaly and v.blocking_type is None


def test_envelope_fields_and_times() -> None:
    v = verdict(
        "web_connectivity",
        None,
        input="https://www.example.org/x",
        measurement_start_time="2024-05-06 07:08:09",
    )
    assert v.domain == "www.example.org" and v.input == "https://www.example.org/x"
    assert v.measurement_start_time.isoformat() == "2024-05-06T07:08:09"
    w = verdict("web_connectivity", None, measurement_start_time="garbage")
    assert w.measurement_start_time.year == 1970
