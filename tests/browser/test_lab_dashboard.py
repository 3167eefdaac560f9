"""The dashboard over a store filled from a lab run (`dideban run websites --lab iran`, then
`dideban ingest`): what the lab's censor did must be what the pages show."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.browser

PageWatch = Any  # conftest.PageWatch


def _api(url: str, path: str, **params: Any) -> Any:
    r = httpx.get(url + path, params=params, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_home_and_country_show_the_labs_blocking(lab_server: str, desktop: PageWatch) -> None:
    anomalies = _api(lab_server, "/api/v1/measurements", probe_cc="IR", anomaly="true", limit=1000)
    blocked = {r["domain"] for r in anomalies["results"]}
    assert len(blocked) >= 5, "the iran scenario blocks several sites"
    page = desktop.page
    page.goto(lab_server + "/", wait_until="load")
    row = page.locator("#countries tbody tr").first.locator("td").all_inner_texts()
    assert row[0] == "IR" and int(row[2]) == anomalies["metadata"]["count"]
    confirmed = _api(lab_server, "/api/v1/aggregation")["result"]["confirmed_count"]
    assert page.locator("#blockpages tbody tr").count() == min(confirmed, 15) > 0
    desktop.shot("lab-home")
    page.locator("#countries a", has_text="IR").click()
    page.wait_for_url("**/country/IR")
    shown = set(page.locator("#blocked-domains tbody tr td:first-child").all_inner_texts())
    assert shown == blocked
    types = set(page.locator("#blocked-domains tbody tr td:nth-child(3)").all_inner_texts())
    assert {"dns", "tls", "http-diff"} <= types
    assert int(page.locator("[data-figure]").first.evaluate("el => el.data.length")) >= 3
    desktop.shot("lab-country-IR")
    assert desktop.errors == [] and desktop.foreign == []


def test_lab_measurement_pages_render_cleanly(lab_server: str, desktop: PageWatch) -> None:
    rows = _api(lab_server, "/api/v1/measurements", limit=1000)["results"]
    assert len(rows) >= 20
    picked = [r for r in rows if r["anomaly"]] + [r for r in rows if not r["anomaly"]][:3]
    for row in picked:
        resp = desktop.page.goto(f"{lab_server}/measurement/{row['measurement_uid']}")
        assert resp is not None and resp.status == 200
        summary = desktop.page.locator("#summary").inner_text()
        if row["anomaly"]:
            assert "blocked" in summary, summary
            assert desktop.page.locator("#steps tbody tr").count() >= 1
        if row["blocking_type"] == "http-diff" and row["confirmed"]:
            desktop.shot("lab-measurement-blockpage")
        assert desktop.errors == [], row["measurement_uid"]
    # The probe's own address never shows: the lab's public address for the probe is
    # scrubbed by the probe before anything is written.
    raw = _api(lab_server, f"/api/v1/measurement/{rows[0]['measurement_uid']}")["raw_measurement"]
    assert raw["probe_ip"] == "127.0.0.1"


def test_lab_chart_csv_equals_the_api(lab_server: str, desktop: PageWatch) -> None:
    page = desktop.page
    page.goto(
        lab_server + "/chart?axis_x=blocking_type&axis_y=category_code&metric=measurement_count",
        wait_until="load",
    )
    page.wait_for_selector("[data-figure] .main-svg", state="attached")
    points = page.locator("[data-figure]").first.evaluate(
        "el => el.data.reduce((n, t) => n + t.y.filter(v => v > 0).length, 0)"
    )
    assert points > 0
    with page.expect_download() as info:
        page.click("#csv-download")
    downloaded = Path(info.value.path()).read_text(encoding="utf-8")
    api = httpx.get(
        lab_server + "/api/v1/aggregation",
        params={"axis_x": "blocking_type", "axis_y": "category_code", "format": "CSV"},
        timeout=10,
    ).text
    assert downloaded == api
    rows = list(csv.DictReader(io.StringIO(downloaded)))
    total = _api(lab_server, "/api/v1/aggregation")["result"]["measurement_count"]
    assert sum(int(r["measurement_count"]) for r in rows) == total
    desktop.shot("lab-chart")
    assert desktop.errors == []
