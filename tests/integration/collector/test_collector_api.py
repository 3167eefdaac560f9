"""The collector's API in-process: check-in shape and URL order, test helpers, idempotency
across a restart, closing, metrics."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from pathlib import Path
from typing import Any

import collector_kit
import httpx
from collector_kit import OPEN_REQUEST

from dideban.collector.ids import REPORT_ID_RE
from dideban.collector.storage import sealed_files
from dideban.model.rawfile import read_bytes

HELPER = "https://helper.lab.test"


def in_process(data_dir: Path) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
    return collector_kit.in_process(data_dir, seal_after=3600, test_helpers=[HELPER])


def _measurement(rid: str, url: str) -> dict[str, Any]:
    return {
        "data_format_version": "0.2.0",
        "measurement_start_time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "probe_asn": "AS197207",
        "probe_cc": "IR",
        "report_id": rid,
        "software_name": "dideban",
        "software_version": "0.1.0",
        "test_keys": {},
        "test_name": "web_connectivity",
        "test_version": "0.5.0",
        "input": url,
    }


async def test_check_in_least_measured_first_and_test_helpers(tmp_path: Path) -> None:
    async with in_process(tmp_path / "d") as c:
        req = {"probe_cc": "IR", "probe_asn": "AS197207", "run_type": "timed", "charging": False}
        first = (await c.post("/api/v1/check-in", json=req)).json()
        assert first["v"] == 1 and first["probe_cc"] == "IR" and first["probe_asn"] == "AS197207"
        assert first["utc_time"].endswith("Z")
        wc = first["tests"]["web_connectivity"]
        assert REPORT_ID_RE.match(wc["report_id"])
        assert len(wc["urls"]) == 20
        assert set(wc["urls"][0]) == {"url", "category_code", "country_code"}
        assert first["conf"]["test_helpers"]["web-connectivity"] == [
            {"address": HELPER, "type": "https"}
        ]
        # Measure the first URL; the next check-in puts it last among the candidates.
        measured = wc["urls"][0]["url"]
        doc = {"format": "json", "content": _measurement(wc["report_id"], measured)}
        assert (await c.post(f"/report/{wc['report_id']}", json=doc)).status_code == 200
        manual = {**req, "run_type": "manual"}
        again = (await c.post("/api/v1/check-in", json=manual)).json()
        urls = [u["url"] for u in again["tests"]["web_connectivity"]["urls"]]
        assert urls[-1] == measured and urls[0] != measured
        charging = (await c.post("/api/v1/check-in", json={**req, "charging": True})).json()
        assert len(charging["tests"]["web_connectivity"]["urls"]) == 100
        helpers = (await c.get("/api/v1/test-helpers")).json()
        assert helpers == {"web-connectivity": [{"address": HELPER, "type": "https"}]}


async def test_resubmission_after_restart_is_idempotent(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    open_req = OPEN_REQUEST
    async with in_process(data_dir) as c:
        opened = (await c.post("/report", json=open_req)).json()
        assert opened["supported_formats"] == ["json"] and opened["backend_version"]
        rid = opened["report_id"]
        assert rid.split("_")[1:4] == ["webconnectivity", "IR", "197207"]
        content = _measurement(rid, "http://once.example/")
        uid = (await c.post(f"/report/{rid}", json={"format": "json", "content": content})).json()[
            "measurement_uid"
        ]
        assert uid.split("_", 1)[1].startswith("IR_web_connectivity_")
    async with in_process(data_dir) as c:
        # Same content, different key order and spacing: still the same measurement.
        body = json.dumps({"format": "json", "content": dict(reversed(list(content.items())))})
        again = await c.post(
            f"/report/{rid}", content=body, headers={"content-type": "application/json"}
        )
        assert again.json() == {"measurement_uid": uid}
        assert (await c.post(f"/report/{rid}/close")).status_code == 200
        # After close the stored one is still recognised; a new one is refused.
        doc = {"format": "json", "content": content}
        assert (await c.post(f"/report/{rid}", json=doc)).json() == {"measurement_uid": uid}
        other = {"format": "json", "content": _measurement(rid, "http://new.example/")}
        late = await c.post(f"/report/{rid}", json=other)
        assert late.status_code == 409 and late.json()["error"]["code"] == "report_closed"
        metrics = (await c.get("/metrics")).text
        assert "dideban_collector_duplicates_total 2" in metrics
        assert "dideban_collector_fsync_seconds_count" in metrics
    rows = [json.loads(x) for p in sealed_files(data_dir) for x in read_bytes(p).splitlines()]
    assert len(rows) == 1 and rows[0]["measurement_uid"] == uid
    assert list(rows[0])[:-1] == list(content)  # submitted key order kept, uid appended


async def test_check_in_tells_the_probe_the_address_it_came_from(tmp_path: Path) -> None:
    import httpx

    from dideban.collector.app import create_app

    app = create_app(tmp_path / "data")
    transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 40000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://collector.test") as c,
    ):
        answer = (
            await c.post(
                "/api/v1/check-in",
                json={
                    "probe_cc": "IR",
                    "probe_asn": "AS197207",
                    "run_type": "manual",
                    "charging": True,
                    "software_name": "dideban",
                    "software_version": "0.1.0",
                    "platform": "linux",
                    "on_wifi": True,
                },
            )
        ).json()
    assert answer["probe_ip"] == "198.51.100.9"
    # Nothing about the address is kept by the collector.
    assert "198.51.100.9" not in "".join(
        p.read_text(errors="replace") for p in (tmp_path / "data").rglob("*") if p.is_file()
    )
