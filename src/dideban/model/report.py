"""The probe-services "open report" request (`POST /report`): one shape for the probe that
sends it and the collector that reads it.

OONI's probe-services API: a report groups the measurements of one test run from one network;
the request names the test, the probe's network and the software, in data format 0.2.0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Final

# The keys of the request, all strings.
OPEN_REPORT_KEYS: Final[tuple[str, ...]] = (
    "data_format_version",
    "format",
    "probe_asn",
    "probe_cc",
    "software_name",
    "software_version",
    "test_name",
    "test_version",
)


@dataclass(frozen=True)
class OpenReport:
    test_name: str
    test_version: str
    probe_cc: str
    probe_asn: str
    software_name: str
    software_version: str

    def to_json(self) -> dict[str, str]:
        """The request body: the fields, and the data format (`OPEN_REPORT_KEYS` in all)."""
        return {"data_format_version": "0.2.0", "format": "json", **asdict(self)}
