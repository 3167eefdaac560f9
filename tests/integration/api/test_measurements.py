"""/api/v1/measurements: every filter, ordering and paging against known rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from dideban.model.verdict import Verdict

Pred = Callable[[Verdict], bool]

FILTERS: list[tuple[dict[str, str], Pred]] = [
    ({"probe_cc": "IR"}, lambda v: v.probe_cc == "IR"),
    ({"probe_cc": "ir,cn"}, lambda v: v.probe_cc in ("IR", "CN")),
    ({"probe_asn": "AS4134"}, lambda v: v.probe_asn == "AS4134"),
    ({"probe_asn": "4134,AS12389"}, lambda v: v.probe_asn in ("AS4134", "AS12389")),
    ({"test_name": "whatsapp"}, lambda v: v.test_name == "whatsapp"),
    ({"input": "https://www.bbc.com/"}, lambda v: v.input == "https://www.bbc.com/"),
    ({"domain": "twitter.com"}, lambda v: v.domain == "twitter.com"),
    ({"domain": "Twitter.com,signal.org"}, lambda v: v.domain in ("twitter.com", "signal.org")),
    ({"category_code": "NEWS"}, lambda v: v.category_code == "NEWS"),
    ({"blocking_type": "dns"}, lambda v: v.blocking_type == "dns"),
    ({"since": "2026-11-01"}, lambda v: v.measurement_start_time >= dt.datetime(2026, 11, 1)),
    (
        {"until": "2026-10-10T12:00:00"},
        lambda v: v.measurement_start_time < dt.datetime(2026, 10, 10, 12),
    ),
    (
        {"since": "2026-10-05T00:00:00+03:30", "until": "2026-10-20"},
        lambda v: (
            dt.datetime(2026, 10, 4, 20, 30) <= v.measurement_start_time < dt.datetime(2026, 10, 20)
        ),
    ),
    ({"anomaly": "true"}, lambda v: v.anomaly),
    ({"anomaly": "false"}, lambda v: not v.anomaly),
    ({"confirmed": "true"}, lambda v: v.confirmed),
    ({"confirmed": "false"}, lambda v: not v.confirmed),
    ({"failure": "true"}, lambda v: v.failure),
    ({"failure": "false"}, lambda v: not v.failure),
    (
        {"probe_cc": "IR", "anomaly": "true", "domain": "www.bbc.com"},
        lambda v: v.probe_cc == "IR" and v.anomaly and v.domain == "www.bbc.com",
    ),
]


async def _all(
    client: httpx.AsyncClient, params: dict[str, str]
) -> tuple[int, list[dict[str, Any]]]:
    r = await client.get("/api/v1/measurements", params={**params, "limit": "1000"})
    assert r.status_code == 200, r.text
    body = r.json()
    return body["metadata"]["count"], body["results"]


@pytest.mark.parametrize(("params", "pred"), FILTERS, ids=[str(p) for p, _ in FILTERS])
async def test_each_filter_selects_exactly_the_matching_rows(
    client: httpx.AsyncClient, verdicts: list[Verdict], params: dict[str, str], pred: Pred
) -> None:
    expected = {v.measurement_uid for v in verdicts if pred(v)}
    assert 0 < len(expected) < len(verdicts), "the fixture must make this filter discriminate"
    count, results = await _all(client, params)
    assert count == len(expected)
    assert {r["measurement_uid"] for r in results} == expected


@pytest.mark.parametrize(
    "order_by", ["measurement_start_time", "input", "probe_cc", "probe_asn", "test_name", "domain"]
)
@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_order_by_and_paging_cover_every_row_once(
    client: httpx.AsyncClient, verdicts: list[Verdict], order_by: str, order: str
) -> None:
    seen: list[dict[str, Any]] = []
    offset = 0
    while True:
        r = await client.get(
            "/api/v1/measurements",
            params={"order_by": order_by, "order": order, "limit": 150, "offset": offset},
        )
        body = r.json()
        assert body["metadata"]["count"] == len(verdicts)
        assert body["metadata"]["offset"] == offset
        seen.extend(body["results"])
        if body["metadata"]["next_url"] is None:
            break
        assert f"offset={offset + 150}" in body["metadata"]["next_url"]
        offset += 150
    assert sorted(r["measurement_uid"] for r in seen) == sorted(v.measurement_uid for v in verdicts)
    keys = [r[order_by] for r in seen if r[order_by] is not None]
    assert keys == sorted(keys, reverse=(order == "desc"))
    # Rows without a value (NULL input/domain) come last whatever the order.
    nulls = [i for i, r in enumerate(seen) if r[order_by] is None]
    assert nulls == list(range(len(seen) - len(nulls), len(seen)))


async def test_result_rows_have_ooni_fields_and_links(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/measurements", params={"limit": 3, "confirmed": "true"})
    body = r.json()
    assert body["metadata"]["limit"] == 3 and body["metadata"]["current_page"] == 1
    row = body["results"][0]
    for key in (
        "measurement_uid", "report_id", "input", "probe_cc", "probe_asn", "test_name",
        "measurement_start_time", "anomaly", "confirmed", "failure", "measurement_url",
    ):  # fmt: skip
        assert key in row
    assert row["confirmed"] is True and row["anomaly"] is True
    assert row["measurement_start_time"].endswith("Z")
    assert (
        row["measurement_url"] == f"http://dideban.test/api/v1/measurement/{row['measurement_uid']}"
    )
    detail = await client.get(row["measurement_url"].removeprefix("http://dideban.test"))
    assert detail.status_code == 200


@pytest.mark.parametrize(
    ("params", "every"),
    [
        ({"until": "0001-01-01T00:01:01+11:00"}, False),  # year 0 in UTC: before every row
        ({"since": "0001-01-01T00:01:01+11:00"}, True),
        ({"until": "9999-12-31T23:59:59-01:00"}, True),  # year 10000 in UTC: after every row
        ({"since": "9999-12-31T23:59:59-01:00"}, False),
    ],
)
async def test_times_past_the_ends_of_the_range_are_those_ends(
    client: httpx.AsyncClient,
    sample_store: tuple[Path, list[Verdict]],
    params: dict[str, str],
    every: bool,
) -> None:
    """Valid ISO times whose offset takes them out of Python's range in UTC (schemathesis
    found them; they were a 400) select all rows or none."""
    r = await client.get("/api/v1/measurements", params={**params, "limit": 1})
    assert r.status_code == 200
    assert r.json()["metadata"]["count"] == (len(sample_store[1]) if every else 0)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"probe_cc": "IRN"}, "probe_cc"),
        ({"probe_asn": "ASX"}, "probe_asn"),
        ({"since": "yesterday"}, "since"),
        ({"since": "1700000000"}, "since"),
        ({"until": "2026-02-30"}, "until"),
        ({"anomaly": "maybe"}, "anomaly"),
        ({"limit": "0"}, "limit"),
        ({"limit": "100000"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"order_by": "probe_ip"}, "order_by"),
        ({"order": "sideways"}, "order"),
        ({"domain": "bad domain"}, "domain"),
    ],
)
async def test_bad_parameters_get_400_in_the_error_shape(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    r = await client.get("/api/v1/measurements", params=params)
    assert r.status_code == 400
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == "invalid_request"
    assert field in body["error"]["message"]
