"""The OONI envelope around each nettest result, as the probe writes it.

`probe_ip` is always 127.0.0.1 (model.measurement.SCRUBBED_PROBE_IP): the probe never records
its own address, and `dideban.probe.privacy` scrubs it from every other field.
"""

from __future__ import annotations

import datetime as dt
import platform
import sys
from dataclasses import dataclass, field
from typing import Any

from dideban.model.measurement import Envelope, ProbeNetwork

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def default_annotations(network_type: str) -> dict[str, str]:
    """OONI's annotations for this machine: platform, architecture and network type."""
    machine = platform.machine().lower()
    return {
        "platform": "linux" if sys.platform.startswith("linux") else sys.platform,
        "architecture": _ARCH.get(machine, machine or "unknown"),
        "network_type": network_type,
    }


@dataclass(frozen=True)
class RunInfo:
    """What every measurement of one run shares."""

    test_name: str
    test_version: str
    network: ProbeNetwork
    test_start_time: dt.datetime
    test_helper_url: str = ""
    report_id: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    options: tuple[str, ...] = ()

    def envelope(self, input_url: str | None, measurement_start_time: dt.datetime) -> Envelope:
        helpers: dict[str, Any] = {}
        if self.test_helper_url:
            helpers["backend"] = {"address": self.test_helper_url, "type": "https"}
        return Envelope(
            test_name=self.test_name,
            test_version=self.test_version,
            network=self.network,
            test_start_time=self.test_start_time,
            measurement_start_time=measurement_start_time,
            input=input_url,
            report_id=self.report_id,
            test_helpers=helpers,
            annotations=dict(self.annotations),
            options=list(self.options),
        )
