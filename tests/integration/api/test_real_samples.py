"""The API and pages over a store that `dideban ingest` filled from real OONI measurements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from dideban.api.app import create_app
from dideban.pipeline.rules import RULES
from dideban.store import Store


@pytest.fixture(scope="module")
def real_app(real_store: Path) -> Iterator[FastAPI]:
    app = create_app(real_store)
    yield app
    app.state.reader.close()


@pytest.fixture
async def real(real_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=real_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


def _stored(db: Path) -> dict[str, Any]:
    with Store.open(db, read_only=True) as store:
        counts = store.counts()
        uids = [r[0] for r in store.conn.execute("SELECT measurement_uid FROM verdicts").fetchall()]
        raws = {u: store.raw_measurement(u) for u in uids}
    return {"counts": counts, "raws": raws}


async def test_every_real_measurement_has_its_raw_data_and_explained_rules(
    real: httpx.AsyncClient, real_store: Path
) -> None:
    stored = _stored(real_store)
    assert stored["counts"]["verdicts"] >= 30
    described = {r.id for r in RULES}
    listing = (await real.get("/api/v1/measurements", params={"limit": 1000})).json()
    assert listing["metadata"]["count"] == stored["counts"]["verdicts"]
    for row in listing["results"]:
        uid = row["measurement_uid"]
        body = (await real.get(f"/api/v1/measurement/{uid}")).json()
        assert body["raw_measurement"] == stored["raws"][uid]
        assert isinstance(body["raw_measurement"], dict) and body["raw_measurement"]
        rules = body["explanation"]["rules"]
        assert rules and all(r["id"] in described and r["description"] for r in rules)
        page = await real.get(f"/measurement/{uid}")
        assert page.status_code == 200
        for r in rules:
            assert r["description"].split(":")[0].replace("'", "&#39;") in page.text


async def test_real_blockpage_is_confirmed_and_shown_next_to_the_control(
    real: httpx.AsyncClient,
) -> None:
    body = (await real.get("/api/v1/measurements", params={"probe_cc": "ID"})).json()
    (row,) = body["results"]
    assert row["confirmed"] is True and row["blocking_type"] == "http-diff"
    detail = (await real.get(f"/api/v1/measurement/{row['measurement_uid']}")).json()
    assert detail["verdict"]["fingerprints"]
    assert {o["kind"] for o in detail["observations"]} >= {"dns", "tcp", "http"}
    page = (await real.get(f"/measurement/{row['measurement_uid']}")).text
    assert "confirmed blocked" in page
    # The control's answer sits beside the probe's in the HTTP row.
    assert "status 200" in page


async def test_aggregation_over_real_data_adds_up(real: httpx.AsyncClient) -> None:
    total = (await real.get("/api/v1/aggregation")).json()["result"]
    cells = (
        await real.get("/api/v1/aggregation", params={"axis_x": "test_name", "axis_y": "probe_cc"})
    ).json()["result"]
    for key in (
        "measurement_count",
        "anomaly_count",
        "confirmed_count",
        "failure_count",
        "ok_count",
    ):
        assert sum(c[key] for c in cells) == total[key]
    for url in ["/", "/search", "/chart?axis_x=test_name", "/country/IT", "/domain/nexa.polito.it"]:
        assert (await real.get(url)).status_code == 200, url
