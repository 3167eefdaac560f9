"""Observations and verdicts: what the pipeline derives from a raw measurement.

These dataclasses are the single definition of the store's tables (the DuckDB schema is
generated from them, see `dideban.store`), of `dideban analyze --format jsonl` rows and of the
API's measurement rows. Keep field names as OONI spells them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

BlockingType = Literal["dns", "tcp_ip", "tls", "http-failure", "http-diff"]
BLOCKING_TYPES: tuple[str, ...] = ("dns", "tcp_ip", "tls", "http-failure", "http-diff")


@dataclass(slots=True)
class Observation:
    """One flat row per DNS answer, TCP connect, TLS handshake or HTTP exchange."""

    measurement_uid: str
    observation_idx: int
    kind: Literal["dns", "tcp", "tls", "http"]
    transaction_id: int | None = None
    hostname: str | None = None
    ip: str | None = None
    port: int | None = None
    dns_engine: str | None = None
    dns_answer: str | None = None
    tls_server_name: str | None = None
    http_request_url: str | None = None
    http_status_code: int | None = None
    http_body_length: int | None = None
    http_title: str | None = None
    failure: str | None = None
    t0: float | None = None
    t: float | None = None
    # Matches of blocking fingerprints against this observation (names).
    fingerprints: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Verdict:
    """One row per measurement: the pipeline's explained verdict."""

    measurement_uid: str
    report_id: str
    input: str | None
    domain: str | None
    probe_cc: str
    probe_asn: str
    test_name: str
    measurement_start_time: dt.datetime
    category_code: str | None = None
    anomaly: bool = False
    confirmed: bool = False
    failure: bool = False
    blocking_type: str | None = None  # None or one of BLOCKING_TYPES
    # Fuzzy per-layer scores in [0, 1], as ooni/data's analysis_web_measurement.
    dns_blocked: float = 0.0
    dns_down: float = 0.0
    dns_ok: float = 0.0
    tcp_blocked: float = 0.0
    tcp_down: float = 0.0
    tcp_ok: float = 0.0
    tls_blocked: float = 0.0
    tls_down: float = 0.0
    tls_ok: float = 0.0
    http_blocked: float = 0.0
    http_down: float = 0.0
    http_ok: float = 0.0
    fingerprints: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    # What the probe itself said (web_connectivity `blocking`/`accessible`), kept beside ours.
    probe_blocking: str | None = None
    probe_accessible: bool | None = None
    disagrees_with_probe: bool = False
    # Where the raw measurement lives (file path and line number, or collector path).
    raw_path: str | None = None
    raw_line: int | None = None
    rules_version: str = ""
