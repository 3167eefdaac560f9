"""The OONI measurement envelope, data format 0.2.0 (df-000-base).

A measurement is kept as a plain JSON-able dict: that is what OONI's tools read, what the
collector stores unchanged, and what the pipeline parses. This module only builds and checks
the envelope; each nettest fills `test_keys`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

from dideban import SOFTWARE_NAME, __version__

DATA_FORMAT_VERSION: Final = "0.2.0"
# OONI replaces the probe's own address with this in every field.
SCRUBBED_PROBE_IP: Final = "127.0.0.1"

ENVELOPE_KEYS: Final[tuple[str, ...]] = (
    "annotations",
    "data_format_version",
    "extensions",
    "input",
    "input_hashes",
    "measurement_start_time",
    "options",
    "probe_asn",
    "probe_cc",
    "probe_ip",
    "probe_network_name",
    "report_id",
    "resolver_asn",
    "resolver_ip",
    "resolver_network_name",
    "software_name",
    "software_version",
    "test_helpers",
    "test_keys",
    "test_name",
    "test_runtime",
    "test_start_time",
    "test_version",
)

OONI_TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"


def format_time(when: dt.datetime) -> str:
    """OONI's timestamp format: UTC, second precision, `YYYY-mm-dd HH:MM:SS`."""
    return when.astimezone(dt.UTC).strftime(OONI_TIME_FORMAT)


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, OONI_TIME_FORMAT).replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class ProbeNetwork:
    """What the probe knows of the network it measures from (never its own address)."""

    probe_cc: str = "ZZ"
    probe_asn: str = "AS0"
    probe_network_name: str = ""
    resolver_ip: str = ""
    resolver_asn: str = "AS0"
    resolver_network_name: str = ""


@dataclass
class Envelope:
    test_name: str
    test_version: str
    network: ProbeNetwork
    test_start_time: dt.datetime
    measurement_start_time: dt.datetime
    input: str | None = None
    report_id: str = ""
    test_helpers: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    options: list[str] = field(default_factory=list)
    extensions: dict[str, int] = field(default_factory=dict)

    def to_measurement(
        self, test_keys: dict[str, Any] | None, test_runtime: float
    ) -> dict[str, Any]:
        """The full measurement dict, with every top-level key of data format 0.2.0."""
        net = self.network
        annotations = {"engine_name": SOFTWARE_NAME, "engine_version": __version__}
        annotations.update(self.annotations)
        return {
            "annotations": annotations,
            "data_format_version": DATA_FORMAT_VERSION,
            "extensions": dict(self.extensions),
            "input": self.input,
            "input_hashes": [],
            "measurement_start_time": format_time(self.measurement_start_time),
            "options": list(self.options),
            "probe_asn": net.probe_asn,
            "probe_cc": net.probe_cc,
            "probe_ip": SCRUBBED_PROBE_IP,
            "probe_network_name": net.probe_network_name,
            "report_id": self.report_id,
            "resolver_asn": net.resolver_asn,
            "resolver_ip": net.resolver_ip,
            "resolver_network_name": net.resolver_network_name,
            "software_name": SOFTWARE_NAME,
            "software_version": __version__,
            "test_helpers": dict(self.test_helpers),
            "test_keys": test_keys,
            "test_name": self.test_name,
            "test_runtime": round(test_runtime, 6),
            "test_start_time": format_time(self.test_start_time),
            "test_version": self.test_version,
        }


def missing_envelope_keys(measurement: dict[str, Any]) -> list[str]:
    return [k for k in ENVELOPE_KEYS if k not in measurement]


def body_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
