"""/api/v1/measurement/{uid}, the error shape, time limits, read-only access, OpenAPI."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from fastapi import FastAPI

from dideban.api import query as q
from dideban.api.app import create_app
from dideban.api.reader import QueryTimeout, Reader, StoreUnavailable
from dideban.api.samplestore import BLOCKPAGE_FINGERPRINT
from dideban.model.verdict import Verdict


def _raw_lines(store: Path) -> dict[str, Any]:
    lines = (store.parent / "raw" / "measurements.jsonl").read_text().splitlines()
    return {m["measurement_uid"]: m for m in map(json.loads, lines)}


async def test_confirmed_measurement_is_explained(
    client: httpx.AsyncClient, sample_store: tuple[Path, list[Verdict]]
) -> None:
    store, verdicts = sample_store
    v = next(v for v in verdicts if v.confirmed)
    r = await client.get(f"/api/v1/measurement/{v.measurement_uid}")
    assert r.status_code == 200
    body = r.json()
    assert body["raw_measurement"] == _raw_lines(store)[v.measurement_uid]
    assert body["verdict"]["blocking_type"] == "http-diff" and body["verdict"]["confirmed"] is True
    kinds = [o["kind"] for o in body["observations"]]
    assert kinds == ["dns", "tcp", "tls", "http"]
    ex = body["explanation"]
    assert "confirmed blocked" in ex["summary"] and v.probe_cc in ex["summary"]
    assert [r["id"] for r in ex["rules"]] == v.rules
    assert any(BLOCKPAGE_FINGERPRINT in e for e in ex["evidence"])
    assert {s["layer"] for s in ex["scores"]} == {"DNS", "TCP connect", "TLS handshake", "HTTP"}


@pytest.mark.parametrize("btype", ["tcp_ip", "tls", "dns"])
async def test_failed_steps_are_evidence(
    client: httpx.AsyncClient, verdicts: list[Verdict], btype: str
) -> None:
    v = next(v for v in verdicts if v.blocking_type == btype and v.test_name == "web_connectivity")
    ex = (await client.get(f"/api/v1/measurement/{v.measurement_uid}")).json()["explanation"]
    assert "looked blocked" in ex["summary"]
    if btype == "tcp_ip":
        assert any("TCP connect" in e and "generic_timeout_error" in e for e in ex["evidence"])
    elif btype == "tls":
        assert any("TLS handshake" in e and "connection_reset" in e for e in ex["evidence"])
    else:
        assert any(e.startswith("DNS scored blocked 1.00") for e in ex["evidence"])


async def test_measurement_without_raw_or_observations(
    client: httpx.AsyncClient, verdicts: list[Verdict]
) -> None:
    v = next(v for v in verdicts if v.test_name == "whatsapp")
    body = (await client.get(f"/api/v1/measurement/{v.measurement_uid}")).json()
    assert body["raw_measurement"] is None and body["observations"] == []


async def test_unknown_measurement_and_route_are_404_in_the_error_shape(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/api/v1/measurement/nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found" and "nope" in r.json()["error"]["message"]
    r = await client.get("/api/v2/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await client.post("/api/v1/measurements")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


async def test_slow_query_is_interrupted_with_504(
    sample_store: tuple[Path, list[Verdict]], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(sample_store[0], query_timeout=0.3, dashboard=False)

    def slow(*args: Any) -> tuple[str, list[Any]]:
        return "SELECT count(*) AS n FROM range(100000000000) t(a) WHERE a % 7 = 3", []

    monkeypatch.setattr(q, "aggregation_sql", slow)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/api/v1/aggregation")
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "query_timeout"
    # The reader still answers after an interrupted query.
    assert app.state.reader.query("SELECT count(*) AS n FROM verdicts")[0]["n"] == 400


async def test_internal_errors_keep_the_error_shape(
    sample_store: tuple[Path, list[Verdict]], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(sample_store[0], dashboard=False)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(app.state.reader, "query", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/api/v1/measurements")
    assert r.status_code == 500
    assert r.json() == {
        "error": {"code": "internal_error", "message": "internal error: RuntimeError"}
    }


def test_reader_is_read_only_and_times_out(sample_store: tuple[Path, list[Verdict]]) -> None:
    reader = Reader(sample_store[0], timeout=0.2)
    try:
        with pytest.raises(duckdb.Error):
            reader.query("CREATE TABLE evil (a INTEGER)")
        with pytest.raises(QueryTimeout):
            reader.query("SELECT count(*) FROM range(100000000000) t(a) WHERE a % 7 = 3")
        assert reader.query("SELECT count(*) AS n FROM verdicts")[0]["n"] == 400
    finally:
        reader.close()


def test_missing_or_foreign_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="does not exist"):
        Reader(tmp_path / "none.duckdb")
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).execute("CREATE TABLE t (a INTEGER)").close()
    with pytest.raises(StoreUnavailable, match="no verdicts table"):
        Reader(other)
    text = tmp_path / "text.duckdb"
    text.write_text("not a database")
    with pytest.raises(StoreUnavailable, match="cannot open"):
        Reader(text)


async def test_openapi_documents_the_error_shape(client: httpx.AsyncClient, app: FastAPI) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert set(schema["paths"]) == {
        "/api/v1/measurements",
        "/api/v1/aggregation",
        "/api/v1/measurement/{measurement_uid}",
    }
    for path in schema["paths"].values():
        responses = path["get"]["responses"]
        assert "422" not in responses
        assert responses["400"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/ErrorResponse"
        )
    params = {p["name"] for p in schema["paths"]["/api/v1/aggregation"]["get"]["parameters"]}
    assert {"axis_x", "axis_y", "time_grain", "format", "probe_cc", "since", "until"} <= params


async def test_requests_past_the_concurrency_cap_get_503(
    sample_store: tuple[Path, list[Verdict]], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(sample_store[0], dashboard=False, max_in_flight=1)
    real_query = app.state.reader.query

    def slow_query(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.5)
        return real_query(*args, **kwargs)

    monkeypatch.setattr(app.state.reader, "query", slow_query)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        first, second = await asyncio.gather(
            c.get("/api/v1/aggregation"),
            c.get("/api/v1/aggregation", params={"axis_x": "probe_cc"}),
        )
        statuses = sorted([first.status_code, second.status_code])
        assert statuses == [200, 503]
        rejected = first if first.status_code == 503 else second
        assert rejected.json()["error"]["code"] == "overloaded"
        # Once the first is done, the next request is served.
        assert (await c.get("/api/v1/aggregation")).status_code == 200
