"""Dashboard pages in-process: status codes, escaping, CSP, rule descriptions."""

from __future__ import annotations

import datetime as dt
import re
import sys
import types
from pathlib import Path

import httpx
import pytest

from dideban.api.app import create_app
from dideban.api.samplestore import write_store
from dideban.model.verdict import Verdict

EVIL = 'https://evil.example/"><script>alert(1)</script>'


@pytest.mark.parametrize(
    "url", ["/", "/country/IR", "/domain/www.bbc.com", "/chart", "/search", "/search?page=2"]
)
async def test_pages_answer_with_a_strict_csp(client: httpx.AsyncClient, url: str) -> None:
    r = await client.get(url)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    # Nothing is loaded or linked from another host.
    assert not re.search(r'(?:src|href)="(?:https?:)?//', r.text)


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/country/ZZ", 404),
        ("/country/IRAN", 400),
        ("/domain/nothing.example", 404),
        ("/measurement/nope", 404),
        ("/search?since=tomorrow", 400),
        ("/search?page=0", 400),
        ("/search?probe_asn=ASX", 400),
        ("/chart?axis_x=probe_cc&axis_y=probe_cc", 400),
        ("/chart?metric=bogus", 400),
        ("/static/..%2Fpages.py", 404),
        ("/static/.hidden", 404),
    ],
)
async def test_bad_page_requests_get_an_html_error(
    client: httpx.AsyncClient, url: str, status: int
) -> None:
    r = await client.get(url)
    assert r.status_code == status
    if url.startswith("/static"):
        return
    assert 'id="error-message"' in r.text


async def test_plotly_is_served_locally(client: httpx.AsyncClient) -> None:
    r = await client.get("/static/plotly.min.js")
    assert r.status_code == 200 and len(r.content) > 1_000_000
    assert r.headers["content-type"].startswith("text/javascript")
    home = (await client.get("/")).text
    assert '<script src="/static/plotly.min.js"' in home


async def test_hostile_values_are_escaped(tmp_path: Path) -> None:
    v = Verdict(
        measurement_uid="evil-1",
        report_id="r",
        input=EVIL,
        domain="evil.example",
        probe_cc="IR",
        probe_asn="AS1",
        test_name="web_connectivity",
        measurement_start_time=dt.datetime(2026, 11, 1),
        anomaly=True,
        blocking_type="</script><b>",
    )
    db = tmp_path / "evil.duckdb"
    write_store(db, [v], [], {}, tmp_path / "raw.jsonl")
    app = create_app(db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for url in ["/search", "/domain/evil.example", "/country/IR", "/measurement/evil-1"]:
            text = (await c.get(url)).text
            assert "<script>alert(1)</script>" not in text, url
            assert "</script><b>" not in text, url
    app.state.reader.close()


async def test_rule_descriptions_from_the_pipeline_are_shown(
    client: httpx.AsyncClient, verdicts: list[Verdict], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.ModuleType("dideban.pipeline.rules")
    fake.RULES = [  # type: ignore[attr-defined]
        {"id": "wc.tls_reset", "description": "The TLS handshake was reset."}
    ]
    monkeypatch.setitem(sys.modules, "dideban.pipeline.rules", fake)
    v = next(v for v in verdicts if v.blocking_type == "tls")
    body = (await client.get(f"/api/v1/measurement/{v.measurement_uid}")).json()
    rules = {r["id"]: r["description"] for r in body["explanation"]["rules"]}
    assert rules == {"wc.control_ok": None, "wc.tls_reset": "The TLS handshake was reset."}
    page = (await client.get(f"/measurement/{v.measurement_uid}")).text
    assert "The TLS handshake was reset." in page
