"""Checking what probes send, at the edge, before anything is written (pure functions).

Each check raises `CollectorError` with a stable `code`; the codes are the `reason` label of
the rejection counter in /metrics.

Measurements from an unknown network (`probe_cc` "ZZ" or `probe_asn` "AS0") are refused with
422 `unattributable_network`: OONI's pipeline discards them, and a client error tells the probe
not to retry, while storing nothing (the issue lists them under bad input).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

import orjson

from dideban.collector.errors import CollectorError
from dideban.collector.ids import PROBE_ASN_RE, PROBE_CC_RE, TEST_NAME_RE
from dideban.model.report import OPEN_REPORT_KEYS, OpenReport

# OONI's fastpath drops measurements dated more than a day ahead of the collector's clock.
MAX_FUTURE: Final = dt.timedelta(days=1)

MEASUREMENT_STR_KEYS: Final[tuple[str, ...]] = (
    "data_format_version",
    "measurement_start_time",
    "probe_asn",
    "probe_cc",
    "software_name",
    "software_version",
    "test_name",
)


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise CollectorError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CollectorError(400, "wrong_type", f"{what} must be a JSON object")
    return value


def _str_field(obj: dict[str, Any], key: str, where: str) -> str:
    if key not in obj:
        raise CollectorError(400, "missing_key", f"{where} lacks the required key {key!r}")
    value = obj[key]
    if not isinstance(value, str):
        raise CollectorError(400, "wrong_type", f"{where}: {key!r} must be a string")
    return value


def check_network(probe_cc: str, probe_asn: str, where: str) -> None:
    if not PROBE_CC_RE.match(probe_cc):
        raise CollectorError(400, "bad_probe_cc", f"{where}: probe_cc must be two capital letters")
    if not PROBE_ASN_RE.match(probe_asn):
        raise CollectorError(400, "bad_probe_asn", f"{where}: probe_asn must look like AS1234")
    if probe_cc == "ZZ" or probe_asn == "AS0":
        raise CollectorError(
            422,
            "unattributable_network",
            f"{where}: probe_cc ZZ or probe_asn AS0 cannot be attributed; discarded",
        )


def check_test_name(test_name: str, where: str) -> None:
    if not TEST_NAME_RE.match(test_name):
        raise CollectorError(
            400, "bad_test_name", f"{where}: test_name must match {TEST_NAME_RE.pattern}"
        )


def open_report_request(doc: Any) -> OpenReport:
    obj = _object(doc, "the report")
    fields = {k: _str_field(obj, k, "the report") for k in OPEN_REPORT_KEYS}
    if fields["format"] != "json":
        raise CollectorError(400, "unsupported_format", "only format 'json' is supported")
    check_test_name(fields["test_name"], "the report")
    check_network(fields["probe_cc"], fields["probe_asn"], "the report")
    return OpenReport(
        test_name=fields["test_name"],
        test_version=fields["test_version"],
        probe_cc=fields["probe_cc"],
        probe_asn=fields["probe_asn"],
        software_name=fields["software_name"],
        software_version=fields["software_version"],
    )


@dataclass(frozen=True)
class ReportInfo:
    """What the collector remembers of an open report."""

    report_id: str
    test_name: str
    probe_cc: str
    probe_asn: str


def submission_content(doc: Any, report: ReportInfo, now: dt.datetime) -> dict[str, Any]:
    """The measurement inside `{"format": "json", "content": {...}}`, checked against its report."""
    obj = _object(doc, "the submission")
    fmt = _str_field(obj, "format", "the submission")
    if fmt != "json":
        raise CollectorError(400, "unsupported_format", "only format 'json' is supported")
    if "content" not in obj:
        raise CollectorError(400, "missing_key", "the submission lacks the required key 'content'")
    content = _object(obj["content"], "content")
    fields = {k: _str_field(content, k, "the measurement") for k in MEASUREMENT_STR_KEYS}
    if "test_keys" not in content:
        raise CollectorError(
            400, "missing_key", "the measurement lacks the required key 'test_keys'"
        )
    if not isinstance(content["test_keys"], dict):
        raise CollectorError(400, "wrong_type", "the measurement: 'test_keys' must be an object")
    rid = content.get("report_id")
    if rid is not None and not isinstance(rid, str):
        raise CollectorError(400, "wrong_type", "the measurement: 'report_id' must be a string")
    inp = content.get("input")
    if inp is not None and not isinstance(inp, str | list):
        raise CollectorError(400, "wrong_type", "the measurement: 'input' must be a string or null")
    check_test_name(fields["test_name"], "the measurement")
    check_network(fields["probe_cc"], fields["probe_asn"], "the measurement")
    mismatches = [
        key
        for key, expected in (
            ("probe_cc", report.probe_cc),
            ("probe_asn", report.probe_asn),
            ("test_name", report.test_name),
        )
        if fields[key] != expected
    ]
    if rid and rid != report.report_id:
        mismatches.append("report_id")
    if mismatches:
        raise CollectorError(
            400,
            "report_mismatch",
            f"the measurement's {', '.join(mismatches)} disagree with report {report.report_id}",
        )
    try:
        start = dt.datetime.strptime(fields["measurement_start_time"], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise CollectorError(
            400,
            "bad_time",
            "measurement_start_time must be 'YYYY-mm-dd HH:MM:SS' (UTC)",
        ) from None
    if start.replace(tzinfo=dt.UTC) > now + MAX_FUTURE:
        raise CollectorError(
            422, "future_measurement", "measurement_start_time is more than a day in the future"
        )
    return content


@dataclass(frozen=True)
class CheckIn:
    probe_cc: str
    probe_asn: str
    run_type: str
    charging: bool
    category_codes: tuple[str, ...]


def check_in_request(doc: Any) -> CheckIn:
    obj = _object(doc, "the check-in")
    cc = obj.get("probe_cc", "ZZ")
    asn = obj.get("probe_asn", "AS0")
    run_type = obj.get("run_type", "timed")
    charging = obj.get("charging", True)
    for key, value, kind in (
        ("probe_cc", cc, str),
        ("probe_asn", asn, str),
        ("run_type", run_type, str),
        ("charging", charging, bool),
    ):
        if not isinstance(value, kind):
            raise CollectorError(400, "wrong_type", f"the check-in: {key!r} has the wrong type")
    if not PROBE_CC_RE.match(cc):
        raise CollectorError(400, "bad_probe_cc", "the check-in: probe_cc must be two capitals")
    if not PROBE_ASN_RE.match(asn):
        raise CollectorError(400, "bad_probe_asn", "the check-in: probe_asn must look like AS1234")
    if run_type not in ("timed", "manual"):
        raise CollectorError(400, "bad_run_type", "the check-in: run_type is 'timed' or 'manual'")
    wc = obj.get("web_connectivity") or {}
    if not isinstance(wc, dict):
        raise CollectorError(400, "wrong_type", "the check-in: web_connectivity must be an object")
    codes = wc.get("category_codes") or []
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise CollectorError(400, "wrong_type", "the check-in: category_codes must be strings")
    return CheckIn(cc, asn, run_type, charging, tuple(codes))
