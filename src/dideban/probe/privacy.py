"""Scrubbing the probe's own addresses from a measurement before it is written or sent.

One scrubber for everything the probe emits: `dideban.probe.scrub.scrub_measurement` (issue 3),
which replaces every occurrence of the probe's addresses, in any string, dict key, header or
base64 body, by 127.0.0.1 (as OONI does) and changes nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dideban.probe.scrub import scrub_measurement

Scrubber = Callable[[dict[str, Any], list[str]], dict[str, Any]]


def scrubber() -> Scrubber:
    """The scrubber the probe applies to each measurement, with the addresses to remove."""
    return scrub_measurement
