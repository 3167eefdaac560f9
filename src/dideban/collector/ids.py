"""OONI's identifiers: report ids and measurement uids.

- report_id: `YYYYMMDDThhmmssZ_<testname>_<CC>_<ASN number>_n1_<16 random alphanumerics>`,
  where `<testname>` is the test name without underscores (`webconnectivity`), as OONI's
  probe-services write it.
- measurement_uid: `<YYYYmmddHHMMSS.ffffff>_<CC>_<test_name>_<16 hex>` (OONI's fastpath).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import string
from typing import Final

_ALNUM: Final = string.ascii_letters + string.digits

REPORT_ID_RE: Final = re.compile(
    r"^(\d{8}T\d{6}Z)_([a-z0-9]+)_([A-Z]{2})_(\d+)_n1_([A-Za-z0-9]{16})$"
)
TEST_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
PROBE_CC_RE: Final = re.compile(r"^[A-Z]{2}$")
PROBE_ASN_RE: Final = re.compile(r"^AS(0|[1-9][0-9]{0,9})$")


def report_testname(test_name: str) -> str:
    return test_name.replace("_", "")


def new_report_id(now: dt.datetime, test_name: str, probe_cc: str, probe_asn: str) -> str:
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    rand = "".join(secrets.choice(_ALNUM) for _ in range(16))
    return f"{stamp}_{report_testname(test_name)}_{probe_cc}_{probe_asn[2:]}_n1_{rand}"


def new_measurement_uid(now: dt.datetime, probe_cc: str, test_name: str) -> str:
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S.%f")
    return f"{stamp}_{probe_cc}_{test_name}_{secrets.token_hex(8)}"
