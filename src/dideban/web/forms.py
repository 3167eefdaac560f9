"""Dashboard forms → `Filters`, with the API's rules; an empty field means "any"."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from dideban.api.params import (
    ASN_LIST,
    BLOCKING_LIST,
    CATEGORY_LIST,
    CC_LIST,
    DOMAIN_LIST,
    NAME_LIST,
)
from dideban.api.query import Filters, naive_utc, normalize_asn, split_list


class FormError(ValueError):
    """A form field the dashboard cannot use; the message names the field."""


_BOOL = {"true": True, "false": False, "1": True, "0": False}


def _match(params: Mapping[str, str], name: str, pattern: str) -> str | None:
    value = (params.get(name) or "").strip()
    if not value:
        return None
    if len(value) > 2048 or not re.match(pattern, value):
        raise FormError(f"{name}: {value[:80]!r} is not valid")
    return value


def _when(params: Mapping[str, str], name: str) -> dt.datetime | None:
    value = (params.get(name) or "").strip()
    if not value:
        return None
    try:
        return naive_utc(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
    except (ValueError, OverflowError):
        raise FormError(f"{name}: {value[:40]!r} is not a date (YYYY-MM-DD)") from None


def _bool(params: Mapping[str, str], name: str) -> bool | None:
    value = (params.get(name) or "").strip().lower()
    if not value or value == "any":
        return None
    if value not in _BOOL:
        raise FormError(f"{name}: choose true, false or any")
    return _BOOL[value]


def filters_from_query(params: Mapping[str, str]) -> Filters:
    url = (params.get("input") or "").strip()
    if len(url) > 2048:
        raise FormError("input: too long")
    return Filters(
        probe_cc=split_list(_match(params, "probe_cc", CC_LIST), upper=True),
        probe_asn=normalize_asn(split_list(_match(params, "probe_asn", ASN_LIST))),
        test_name=split_list(_match(params, "test_name", NAME_LIST)),
        domain=split_list(_match(params, "domain", DOMAIN_LIST), lower=True),
        category_code=split_list(_match(params, "category_code", CATEGORY_LIST), upper=True),
        blocking_type=split_list(_match(params, "blocking_type", BLOCKING_LIST)),
        input=url or None,
        since=_when(params, "since"),
        until=_when(params, "until"),
        anomaly=_bool(params, "anomaly"),
        confirmed=_bool(params, "confirmed"),
        failure=_bool(params, "failure"),
    )
