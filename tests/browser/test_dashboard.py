"""The dashboard in a real browser: pages load cleanly, filters work, charts have data,
the CSV download is the API's answer, and a phone-sized window needs no sideways scrolling."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

pytestmark = pytest.mark.browser

# The fixtures' types (conftest.LiveServer, conftest.PageWatch); conftest is not importable.
LiveServer = Any
PageWatch = Any

RECENT = dt.timedelta(days=30)  # the home page's "now"
POINTS_JS = (
    """el => (el.data || []).reduce((n, t) => n + (t.y || []).filter(v => v > 0).length, 0)"""
)


def _pages(server: LiveServer) -> dict[str, str]:
    confirmed = next(v for v in server.verdicts if v.confirmed)
    return {
        "home": "/",
        "country": "/country/IR",
        "domain": "/domain/www.bbc.com",
        "measurement": f"/measurement/{confirmed.measurement_uid}",
        "chart": "/chart?axis_x=measurement_start_day&axis_y=probe_cc&metric=anomaly_count",
        "search": "/search?probe_cc=IR&anomaly=true",
    }


def _open(watch: PageWatch, url: str) -> Any:
    response = watch.page.goto(url, wait_until="load")
    assert response is not None and response.status == 200, url
    return watch.page


def _chart_points(page: Any) -> int:
    page.wait_for_selector("[data-figure] .main-svg", state="attached")
    return int(page.locator("[data-figure]").first.evaluate(POINTS_JS))


@pytest.mark.parametrize("name", ["home", "country", "domain", "measurement", "chart", "search"])
def test_page_loads_cleanly(live_server: LiveServer, desktop: PageWatch, name: str) -> None:
    page = _open(desktop, live_server.url + _pages(live_server)[name])
    assert page.locator("h1").first.inner_text().strip()
    if page.locator("[data-figure]").count():
        assert _chart_points(page) > 0, "the chart has no data points"
    desktop.shot(f"desktop-{name}")
    assert desktop.errors == []
    assert desktop.foreign == []


def test_home_shows_where_blocking_happens(live_server: LiveServer, desktop: PageWatch) -> None:
    page = _open(desktop, live_server.url + "/")
    countries = page.locator("#countries tbody tr td:first-child").all_inner_texts()
    newest = max(v.measurement_start_time for v in live_server.verdicts)
    recent = [v for v in live_server.verdicts if v.measurement_start_time >= newest - RECENT]
    anomalies = Counter(v.probe_cc for v in recent if v.anomaly)
    by_blocking = sorted({v.probe_cc for v in recent}, key=lambda cc: (-anomalies[cc], cc))
    assert countries == by_blocking
    assert page.locator("#countries tbody tr").first.locator("td").nth(2).inner_text() == str(
        anomalies[by_blocking[0]]
    )
    assert page.locator("#blockpages tbody tr").count() > 0
    page.locator("#countries a", has_text="IR").click()
    page.wait_for_url("**/country/IR")
    rows = page.locator("#blocked-domains tbody tr")
    assert rows.count() == 6  # every listed domain but example.org
    assert page.locator("#asn-breakdown tbody tr").count() == 3
    assert desktop.errors == []


def test_search_filters_change_results_and_live_in_the_url(
    live_server: LiveServer, desktop: PageWatch
) -> None:
    page = _open(desktop, live_server.url + "/search")
    before = page.locator("#result-count").inner_text()
    assert before.startswith(f"{len(live_server.verdicts)} measurements")
    page.fill("input[name=probe_cc]", "CN")
    page.select_option("select[name=anomaly]", "true")
    page.click("#search-form button[type=submit]")
    page.wait_for_url("**/search?*probe_cc=CN*")
    expected = sum(1 for v in live_server.verdicts if v.probe_cc == "CN" and v.anomaly)
    assert page.locator("#result-count").inner_text().startswith(f"{expected} measurement")
    countries = set(page.locator("#results tbody tr td:nth-child(2)").all_inner_texts())
    assert countries == {"CN"}
    verdicts = page.locator("#results tbody td.verdict").all_inner_texts()
    assert verdicts and all(v.startswith("anomaly") for v in verdicts)
    # The link is the state: opening it elsewhere shows the same thing.
    shared = page.url
    assert parse_qs(urlparse(shared).query)["anomaly"] == ["true"]
    page.goto(live_server.url + "/")
    page.goto(shared)
    assert page.locator("input[name=probe_cc]").input_value() == "CN"
    assert page.locator("#result-count").inner_text().startswith(f"{expected} measurement")
    desktop.shot("desktop-search-filtered")
    assert desktop.errors == []


def test_chart_builder_axes_filters_and_csv(live_server: LiveServer, desktop: PageWatch) -> None:
    page = _open(desktop, live_server.url + "/chart")
    traces_before = page.locator("[data-figure]").first.evaluate("el => el.data.length")
    page.select_option("select[name=axis_x]", "probe_asn")
    page.select_option("select[name=axis_y]", "blocking_type")
    page.fill("#chart-form input[name=probe_cc]", "IR")
    page.click("#chart-form button[type=submit]")
    page.wait_for_url("**/chart?*axis_y=blocking_type*")
    assert _chart_points(page) > 0
    traces = page.locator("[data-figure]").first.evaluate("el => el.data.map(t => t.name)")
    assert traces != traces_before and "http-diff" in traces
    xs = page.locator("[data-figure]").first.evaluate(
        "el => [...new Set(el.data.flatMap(t => t.x))]"
    )
    assert sorted(xs) == ["AS197207", "AS44244", "AS58224"]
    desktop.shot("desktop-chart-builder")

    with page.expect_download() as info:
        page.click("#csv-download")
    downloaded = Path(info.value.path()).read_text(encoding="utf-8")
    api = httpx.get(
        live_server.url + "/api/v1/aggregation",
        params={
            "axis_x": "probe_asn",
            "axis_y": "blocking_type",
            "probe_cc": "IR",
            "format": "CSV",
        },
        timeout=10,
    )
    assert api.status_code == 200
    assert downloaded == api.text
    assert len(downloaded.splitlines()) == 1 + page.locator("#cells tbody tr").count()
    assert desktop.errors == []


def test_measurement_page_explains_and_compares_with_control(
    live_server: LiveServer, desktop: PageWatch
) -> None:
    v = next(v for v in live_server.verdicts if v.blocking_type == "tls")
    page = _open(desktop, live_server.url + f"/measurement/{v.measurement_uid}")
    assert "looked blocked" in page.locator("#summary").inner_text()
    steps = page.locator("#steps tbody tr")
    assert steps.count() == 3  # DNS, TCP, TLS: no HTTP after a reset handshake
    tls_row = steps.nth(2).locator("td").all_inner_texts()
    assert tls_row[0] == "TLS handshake"
    assert tls_row[2] == "failed: connection_reset" and tls_row[3] == "ok"
    assert "wc.tls_reset" in page.locator("#rules").inner_text()
    page.locator("#raw summary").click()
    assert v.measurement_uid in page.locator("#raw pre").inner_text()
    desktop.shot("desktop-measurement-tls")
    assert desktop.errors == []


@pytest.mark.parametrize("name", ["home", "country", "domain", "measurement", "chart", "search"])
def test_phone_sized_window_needs_no_sideways_scrolling(
    live_server: LiveServer, phone: PageWatch, name: str
) -> None:
    page = _open(phone, live_server.url + _pages(live_server)[name])
    if page.locator("[data-figure]").count():
        assert _chart_points(page) > 0
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"page is {width}px wide on a 390px screen"
    phone.shot(f"phone-{name}")
    assert phone.errors == [] and phone.foreign == []


def test_bad_input_gets_a_page_not_a_crash(live_server: LiveServer, desktop: PageWatch) -> None:
    response = desktop.page.goto(live_server.url + "/search?since=not-a-date")
    assert response is not None and response.status == 400
    assert "since" in desktop.page.locator("#error-message").inner_text()
    response = desktop.page.goto(live_server.url + "/country/ZZ")
    assert response is not None and response.status == 404


def test_country_date_filter_narrows_table_and_chart(
    live_server: LiveServer, desktop: PageWatch
) -> None:
    page = _open(desktop, live_server.url + "/country/IR")
    days_before = page.locator("[data-figure]").first.evaluate(
        "el => new Set(el.data.flatMap(t => t.x)).size"
    )
    page.fill("input[name=since]", "2026-11-01")
    page.click("form.inline button[type=submit]")
    page.wait_for_url("**/country/IR?*since=2026-11-01*")
    expected = [
        v
        for v in live_server.verdicts
        if v.probe_cc == "IR" and v.measurement_start_time >= dt.datetime(2026, 11, 1)
    ]
    assert page.locator("p.muted").first.inner_text().startswith(f"{len(expected)} measurements")
    days_after = page.locator("[data-figure]").first.evaluate(
        "el => new Set(el.data.flatMap(t => t.x)).size"
    )
    assert 0 < days_after < days_before
    first_days = page.locator("[data-figure]").first.evaluate(
        "el => el.data.flatMap(t => t.x).sort()[0]"
    )
    assert first_days >= "2026-11-01"
    since = page.locator("#blocked-domains tbody tr td:nth-child(4)").all_inner_texts()
    assert since and all(s >= "2026-11-01" for s in since)
    assert desktop.errors == []


def test_every_real_measurement_page_renders_cleanly(real_server: str, desktop: PageWatch) -> None:
    listing = httpx.get(real_server + "/api/v1/measurements", params={"limit": 1000}, timeout=10)
    rows = listing.json()["results"]
    assert len(rows) >= 30
    for row in rows:
        page = _open(desktop, f"{real_server}/measurement/{row['measurement_uid']}")
        assert page.locator("#summary").inner_text().strip()
        assert page.locator("#rules li").count() >= 1
        if row["probe_cc"] == "ID":
            desktop.shot("desktop-real-measurement-ID-blockpage")
        assert desktop.errors == [], row["measurement_uid"]
    page = _open(desktop, real_server + "/")
    assert _chart_points(page) > 0
    desktop.shot("desktop-real-home")
    assert desktop.errors == [] and desktop.foreign == []
