"""The API's questions as SQL: filters, listing and aggregation over the `verdicts` table.

Column names and time grains come only from the closed tuples below; every user value is a
bound parameter. Semantics follow OONI's API: `since` is inclusive and `until` exclusive
(both on measurement_start_time); `ok` means neither anomaly nor failure; list-valued
filters take comma-separated values.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

Axis = Literal[
    "measurement_start_day",
    "probe_cc",
    "probe_asn",
    "category_code",
    "domain",
    "input",
    "test_name",
    "blocking_type",
]
# Each value set is written once, as the Literal type the API's parameters are checked
# against; the tuples are its values.
AXES: Final[tuple[str, ...]] = get_args(Axis)
TimeGrain = Literal["hour", "day", "week", "month"]
TIME_GRAINS: Final[tuple[str, ...]] = get_args(TimeGrain)
OrderBy = Literal["measurement_start_time", "input", "probe_cc", "probe_asn", "test_name", "domain"]
ORDER_BY: Final[tuple[str, ...]] = get_args(OrderBy)
COUNTS: Final[tuple[str, ...]] = (
    "anomaly_count",
    "confirmed_count",
    "failure_count",
    "ok_count",
    "measurement_count",
)

# Columns of a listed measurement, in OONI's order plus Dideban's verdict columns.
LIST_COLUMNS: Final[tuple[str, ...]] = (
    "measurement_uid",
    "report_id",
    "input",
    "domain",
    "category_code",
    "probe_cc",
    "probe_asn",
    "test_name",
    "measurement_start_time",
    "anomaly",
    "confirmed",
    "failure",
    "blocking_type",
)
_COUNT_SQL: Final = (
    "count(*) FILTER (WHERE anomaly) AS anomaly_count, "
    "count(*) FILTER (WHERE confirmed) AS confirmed_count, "
    "count(*) FILTER (WHERE failure) AS failure_count, "
    "count(*) FILTER (WHERE NOT anomaly AND NOT failure) AS ok_count, "
    "count(*) AS measurement_count"
)


@dataclass
class Filters:
    """The filters shared by /measurements, /aggregation and the dashboard."""

    probe_cc: list[str] = field(default_factory=list)
    probe_asn: list[str] = field(default_factory=list)
    test_name: list[str] = field(default_factory=list)
    domain: list[str] = field(default_factory=list)
    category_code: list[str] = field(default_factory=list)
    blocking_type: list[str] = field(default_factory=list)
    input: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    anomaly: bool | None = None
    confirmed: bool | None = None
    failure: bool | None = None

    def where(self) -> tuple[str, list[Any]]:
        """A WHERE clause (or "") and its parameters."""
        parts: list[str] = []
        params: list[Any] = []
        for name in (
            "probe_cc",
            "probe_asn",
            "test_name",
            "domain",
            "category_code",
            "blocking_type",
        ):
            values: list[str] = getattr(self, name)
            if values:
                parts.append(f"{name} IN ({', '.join('?' for _ in values)})")
                params.extend(values)
        if self.input is not None:
            parts.append("input = ?")
            params.append(self.input)
        if self.since is not None:
            parts.append("measurement_start_time >= ?")
            params.append(naive_utc(self.since))
        if self.until is not None:
            parts.append("measurement_start_time < ?")
            params.append(naive_utc(self.until))
        for name in ("anomaly", "confirmed", "failure"):
            value: bool | None = getattr(self, name)
            if value is not None:
                parts.append(f"{name} = ?")
                params.append(value)
        return (" WHERE " + " AND ".join(parts) if parts else ""), params


def naive_utc(when: dt.datetime) -> dt.datetime:
    """The store keeps measurement_start_time as naive UTC (OONI's convention)."""
    if when.tzinfo is None:
        return when
    return when.astimezone(dt.UTC).replace(tzinfo=None)


def split_list(value: str | None, *, upper: bool = False, lower: bool = False) -> list[str]:
    if value is None:
        return []
    items = [v.strip() for v in value.split(",") if v.strip()]
    if upper:
        items = [v.upper() for v in items]
    if lower:
        items = [v.lower() for v in items]
    return items


def normalize_asn(values: list[str]) -> list[str]:
    """`AS1234`, `as1234` and `1234` all name AS1234 (the store's spelling)."""
    out = []
    for v in values:
        digits = v[2:] if v[:2].upper() == "AS" else v
        out.append(f"AS{int(digits)}")
    return out


def list_sql(
    filters: Filters, order_by: str, order: str, limit: int, offset: int
) -> tuple[str, str, list[Any]]:
    """(page query, count query, params) for /api/v1/measurements."""
    if order_by not in ORDER_BY or order not in ("asc", "desc"):
        raise ValueError("order_by/order outside the closed list")
    where, params = filters.where()
    direction = order.upper()
    page = (
        f"SELECT {', '.join(LIST_COLUMNS)} FROM verdicts{where} "
        f"ORDER BY {order_by} {direction} NULLS LAST, measurement_uid {direction} "
        f"LIMIT {int(limit)} OFFSET {int(offset)}"
    )
    count = f"SELECT count(*) AS n FROM verdicts{where}"
    return page, count, params


def axis_expr(axis: str, time_grain: str) -> str:
    if axis not in AXES or time_grain not in TIME_GRAINS:
        raise ValueError("axis/time_grain outside the closed list")
    if axis == "measurement_start_day":
        # A cast to DATE is cheaper than date_trunc on a timestamp (~1.6x on 10 M rows).
        if time_grain == "day":
            return "CAST(measurement_start_time AS DATE)"
        if time_grain == "hour":
            return "date_trunc('hour', measurement_start_time)"
        return f"date_trunc('{time_grain}', CAST(measurement_start_time AS DATE))"
    return axis


def aggregation_sql(
    filters: Filters, axis_x: str | None, axis_y: str | None, time_grain: str
) -> tuple[str, list[Any]]:
    """One row per (axis_x, axis_y) cell with OONI's five counts."""
    where, params = filters.where()
    axes = [a for a in (axis_x, axis_y) if a is not None]
    select = [f"{axis_expr(a, time_grain)} AS {a}" for a in axes]
    sql = f"SELECT {', '.join([*select, _COUNT_SQL])} FROM verdicts{where}"
    if axes:
        sql += f" GROUP BY {', '.join(axes)} ORDER BY {', '.join(f'{a} NULLS LAST' for a in axes)}"
    return sql, params


def format_cell(axis: str, value: Any, time_grain: str) -> Any:
    """Axis values as OONI prints them: days as `YYYY-MM-DD`, hours with a time."""
    if axis == "measurement_start_day" and isinstance(value, dt.datetime):
        if time_grain == "hour":
            return naive_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
        return value.date().isoformat()
    if axis == "measurement_start_day" and isinstance(value, dt.date):
        return value.isoformat()
    return value
