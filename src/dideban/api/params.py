"""Query-string filters shared by the API and the dashboard, validated at the edge."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from fastapi import Query
from fastapi.exceptions import RequestValidationError
from pydantic import BeforeValidator

from dideban.api.query import Filters, naive_utc, normalize_asn, split_list

CC_LIST = r"^[A-Za-z]{2}(,[A-Za-z]{2})*$"
ASN_LIST = r"^(AS|as)?[0-9]{1,10}(,(AS|as)?[0-9]{1,10})*$"
NAME_LIST = r"^[a-z0-9_]+(,[a-z0-9_]+)*$"
DOMAIN_LIST = r"^[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*$"
CATEGORY_LIST = r"^[A-Za-z0-9_]+(,[A-Za-z0-9_]+)*$"
BLOCKING_LIST = r"^[a-z_-]+(,[a-z_-]+)*$"


def _bad(field: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", field), "msg": message, "type": "value_error"}]
    )


def _when(value: dt.datetime | None) -> dt.datetime | None:
    """The time as naive UTC. A valid time whose offset takes it past the ends of the range
    (0001-01-01T00:30+01:00 is in year 0 in UTC) is the end it passed: before, or after,
    every measurement."""
    if value is None:
        return None
    try:
        return naive_utc(value)
    except OverflowError:
        return dt.datetime.min if value.year == dt.MINYEAR else dt.datetime.max


# pydantic would also take a bare number as a Unix time; the API takes ISO 8601 only
# (`2024-01-02`, `2024-01-02T03:04:05`, with an optional offset), as documented.
_ISO = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ].*)?$")


def _iso_only(value: object) -> object:
    if isinstance(value, str) and not _ISO.match(value):
        raise ValueError("expected an ISO 8601 date or date-time (YYYY-MM-DD[THH:MM:SS][Z])")
    return value


IsoDateTime = Annotated[dt.datetime, BeforeValidator(_iso_only)]


def filters_dependency(
    probe_cc: Annotated[
        str | None,
        Query(
            pattern=CC_LIST, max_length=300, description="Country codes, comma-separated (IR,CN)"
        ),
    ] = None,
    probe_asn: Annotated[
        str | None,
        Query(
            pattern=ASN_LIST,
            max_length=600,
            description="Networks, comma-separated (AS197207 or 197207)",
        ),
    ] = None,
    test_name: Annotated[
        str | None,
        Query(pattern=NAME_LIST, max_length=600, description="Test names, comma-separated"),
    ] = None,
    input: Annotated[str | None, Query(max_length=2048, description="Exact input (URL)")] = None,
    domain: Annotated[
        str | None,
        Query(pattern=DOMAIN_LIST, max_length=2048, description="Domains, comma-separated"),
    ] = None,
    category_code: Annotated[
        str | None,
        Query(
            pattern=CATEGORY_LIST,
            max_length=600,
            description="Citizen Lab category codes, comma-separated",
        ),
    ] = None,
    blocking_type: Annotated[
        str | None,
        Query(
            pattern=BLOCKING_LIST,
            max_length=200,
            description="Blocking types, comma-separated (dns, tcp_ip, tls, http-failure, http-diff)",
        ),
    ] = None,
    since: Annotated[
        IsoDateTime | None,
        Query(description="Measurements at or after this time (UTC unless an offset is given)"),
    ] = None,
    until: Annotated[IsoDateTime | None, Query(description="Measurements before this time")] = None,
    anomaly: Annotated[bool | None, Query()] = None,
    confirmed: Annotated[bool | None, Query()] = None,
    failure: Annotated[bool | None, Query()] = None,
) -> Filters:
    try:
        asns = normalize_asn(split_list(probe_asn))
    except ValueError:
        raise _bad("probe_asn", "not an AS number") from None
    return Filters(
        probe_cc=split_list(probe_cc, upper=True),
        probe_asn=asns,
        test_name=split_list(test_name),
        domain=split_list(domain, lower=True),
        category_code=split_list(category_code, upper=True),
        blocking_type=split_list(blocking_type),
        input=input,
        since=_when(since),
        until=_when(until),
        anomaly=anomaly,
        confirmed=confirmed,
        failure=failure,
    )
