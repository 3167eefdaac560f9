"""/api/v1/aggregation: every axis pair and grain, filters, CSV, against counts made in Python."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from typing import Any

import httpx
import pytest

from dideban.api.query import AXES
from dideban.model.verdict import Verdict

COUNT_KEYS = ("anomaly_count", "confirmed_count", "failure_count", "ok_count", "measurement_count")


def _grain(when: dt.datetime, grain: str) -> str:
    if grain == "hour":
        return when.strftime("%Y-%m-%dT%H:00:00Z")
    if grain == "day":
        return when.date().isoformat()
    if grain == "week":  # ISO weeks start on Monday
        return (when.date() - dt.timedelta(days=when.weekday())).isoformat()
    return when.date().replace(day=1).isoformat()


def _value(v: Verdict, axis: str, grain: str) -> Any:
    if axis == "measurement_start_day":
        return _grain(v.measurement_start_time, grain)
    return getattr(v, axis)


def expected_cells(
    verdicts: list[Verdict], axes: list[str], grain: str = "day"
) -> dict[tuple[Any, ...], dict[str, int]]:
    cells: dict[tuple[Any, ...], Counter[str]] = {}
    for v in verdicts:
        key = tuple(_value(v, a, grain) for a in axes)
        c = cells.setdefault(key, Counter())
        c["measurement_count"] += 1
        c["anomaly_count"] += v.anomaly
        c["confirmed_count"] += v.confirmed
        c["failure_count"] += v.failure
        c["ok_count"] += not v.anomaly and not v.failure
    return {k: {n: c[n] for n in COUNT_KEYS} for k, c in cells.items()}


def got_cells(
    result: list[dict[str, Any]], axes: list[str]
) -> dict[tuple[Any, ...], dict[str, int]]:
    out = {}
    for cell in result:
        key = tuple(cell[a] for a in axes)
        assert key not in out, f"duplicate cell {key}"
        out[key] = {n: cell[n] for n in COUNT_KEYS}
    return out


PAIRS = [(x, None) for x in AXES] + [(x, y) for x in AXES for y in AXES if x != y]


@pytest.mark.parametrize(("axis_x", "axis_y"), PAIRS, ids=[f"{x}-{y}" for x, y in PAIRS])
async def test_every_axis_pair_matches_python_counts(
    client: httpx.AsyncClient, verdicts: list[Verdict], axis_x: str, axis_y: str | None
) -> None:
    params = {"axis_x": axis_x}
    if axis_y:
        params["axis_y"] = axis_y
    r = await client.get("/api/v1/aggregation", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    axes = [a for a in (axis_x, axis_y) if a]
    assert body["dimension_count"] == len(axes)
    assert got_cells(body["result"], axes) == expected_cells(verdicts, axes)


@pytest.mark.parametrize("grain", ["hour", "day", "week", "month"])
@pytest.mark.parametrize("axis_y", [None, "probe_cc", "blocking_type"])
async def test_time_grains(
    client: httpx.AsyncClient, verdicts: list[Verdict], grain: str, axis_y: str | None
) -> None:
    params = {"axis_x": "measurement_start_day", "time_grain": grain}
    if axis_y:
        params["axis_y"] = axis_y
    body = (await client.get("/api/v1/aggregation", params=params)).json()
    axes = ["measurement_start_day", *([axis_y] if axis_y else [])]
    expected = expected_cells(verdicts, axes, grain)
    assert got_cells(body["result"], axes) == expected
    days = [c["measurement_start_day"] for c in body["result"]]
    assert days == sorted(days)


async def test_no_axis_gives_one_total(client: httpx.AsyncClient, verdicts: list[Verdict]) -> None:
    body = (await client.get("/api/v1/aggregation")).json()
    assert body["dimension_count"] == 0
    assert {k: body["result"][k] for k in COUNT_KEYS} == expected_cells(verdicts, [])[()]
    total = body["result"]
    # OONI's definition: ok = neither anomaly nor failure (this store never has both).
    assert (
        total["ok_count"]
        == total["measurement_count"] - total["anomaly_count"] - total["failure_count"]
    )


AGG_FILTERS: list[tuple[dict[str, str], Any]] = [
    ({"probe_cc": "IR,CN"}, lambda v: v.probe_cc in ("IR", "CN")),
    ({"probe_asn": "197207"}, lambda v: v.probe_asn == "AS197207"),
    ({"test_name": "web_connectivity"}, lambda v: v.test_name == "web_connectivity"),
    ({"input": "https://signal.org/"}, lambda v: v.input == "https://signal.org/"),
    ({"domain": "www.youtube.com"}, lambda v: v.domain == "www.youtube.com"),
    ({"category_code": "ANON,COMT"}, lambda v: v.category_code in ("ANON", "COMT")),
    ({"blocking_type": "tls,tcp_ip"}, lambda v: v.blocking_type in ("tls", "tcp_ip")),
    ({"since": "2026-10-15", "until": "2026-11-01"},
     lambda v: dt.datetime(2026, 10, 15) <= v.measurement_start_time < dt.datetime(2026, 11, 1)),
    ({"anomaly": "true"}, lambda v: v.anomaly),
    ({"confirmed": "true"}, lambda v: v.confirmed),
    ({"failure": "true"}, lambda v: v.failure),
]  # fmt: skip


@pytest.mark.parametrize(("params", "pred"), AGG_FILTERS, ids=[str(p) for p, _ in AGG_FILTERS])
@pytest.mark.parametrize("axis_x", ["probe_cc", "measurement_start_day"])
async def test_filters_apply_to_aggregation(
    client: httpx.AsyncClient,
    verdicts: list[Verdict],
    params: dict[str, str],
    pred: Any,
    axis_x: str,
) -> None:
    body = (await client.get("/api/v1/aggregation", params={**params, "axis_x": axis_x})).json()
    subset = [v for v in verdicts if pred(v)]
    assert 0 < len(subset) < len(verdicts)
    assert got_cells(body["result"], [axis_x]) == expected_cells(subset, [axis_x])


async def test_csv_is_the_json_answer(client: httpx.AsyncClient) -> None:
    params = {"axis_x": "probe_cc", "axis_y": "blocking_type", "anomaly": "true"}
    js = (await client.get("/api/v1/aggregation", params=params)).json()["result"]
    r = await client.get("/api/v1/aggregation", params={**params, "format": "CSV"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert list(rows[0]) == ["probe_cc", "blocking_type", *COUNT_KEYS]
    as_json = [{k: ("" if v is None else str(v)) for k, v in cell.items()} for cell in js]
    assert rows == as_json
    dl = await client.get(
        "/api/v1/aggregation", params={**params, "format": "CSV", "download": "true"}
    )
    assert "attachment" in dl.headers["content-disposition"] and dl.text == r.text


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"axis_x": "probe_cc", "axis_y": "probe_cc"}, "differ"),
        ({"axis_x": "probe_ip"}, "axis_x"),
        ({"time_grain": "year"}, "time_grain"),
        ({"format": "XML"}, "format"),
        ({"until": "2026-13-01"}, "until"),
    ],
)
async def test_bad_aggregation_requests(
    client: httpx.AsyncClient, params: dict[str, str], needle: str
) -> None:
    r = await client.get("/api/v1/aggregation", params=params)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_request"
    assert needle in r.json()["error"]["message"]


async def test_too_many_cells_is_a_clear_400(
    client: httpx.AsyncClient, verdicts: list[Verdict], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dideban.api.app as app_module

    cells = len(expected_cells(verdicts, ["input", "probe_asn"]))
    monkeypatch.setattr(app_module.aggregate, "__kwdefaults__", {"max_cells": cells - 1})
    r = await client.get("/api/v1/aggregation", params={"axis_x": "input", "axis_y": "probe_asn"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "too_many_cells"
    monkeypatch.setattr(app_module.aggregate, "__kwdefaults__", {"max_cells": cells})
    r = await client.get("/api/v1/aggregation", params={"axis_x": "input", "axis_y": "probe_asn"})
    assert r.status_code == 200 and len(r.json()["result"]) == cells
    page = await client.get("/chart", params={"axis_x": "input", "axis_y": "probe_asn"})
    assert page.status_code == 200
    monkeypatch.setattr("dideban.web.pages.CHART_MAX_CELLS", 3)
    page = await client.get("/chart", params={"axis_x": "input", "axis_y": "probe_asn"})
    assert page.status_code == 400 and "coarser" in page.text
