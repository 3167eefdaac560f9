"""dideban.testhelper: the web-connectivity control server (OONI's test-helper protocol).

`create_app(network, lab_mode=None, max_in_flight=64, max_body=16 MiB)` -> Starlette app;
`measure_control(network, request, lab_mode)` -> the control answer dict.
"""

from __future__ import annotations

from dideban.testhelper.app import create_app
from dideban.testhelper.control import (
    BadControlRequest,
    ControlRequest,
    measure_control,
    parse_control_request,
)

__all__ = [
    "BadControlRequest",
    "ControlRequest",
    "create_app",
    "measure_control",
    "parse_control_request",
]
