"""Malformed measurements go through ingest, the API and every dashboard page without an
error: real measurements with values replaced (a bool where the control's addresses belong,
an unclosed IPv6 URL as input, integers beyond BIGINT...; see tests/pipeline_kit.py).

Random changes to all kinds of measurements, and every replacement value at each envelope
key and each place of a web_connectivity control (what the measurement page shows beside
each step)."""

from __future__ import annotations

import json
import random
import urllib.parse
from pathlib import Path

import duckdb
import httpx
from typer.testing import CliRunner

from dideban.api.app import create_app
from dideban.cli import build_app
from pipeline_kit import each_replacement, is_read, mutated, paths, web_connectivity_with_control

N = 150


async def test_malformed_measurements_are_ingested_and_shown(tmp_path: Path) -> None:
    wc = web_connectivity_with_control()
    where = [
        p
        for p in paths(wc)[1:]
        if (len(p) == 1 and is_read(p) and p != ("measurement_uid",))
        or (p[:2] == ("test_keys", "control") and len(p) <= 4)
    ]
    docs = mutated(random.Random(7), N) + each_replacement(wc, where)
    data = tmp_path / "data"
    data.mkdir()
    (data / "malformed.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    db = tmp_path / "store.duckdb"
    result = CliRunner().invoke(build_app(), ["ingest", "--data-dir", str(data), "--db", str(db)])
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(db), read_only=True) as c:
        rows = c.execute("SELECT measurement_uid, probe_cc, domain FROM verdicts").fetchall()
    # Every measurement is there, but those whose test_name and test_keys were both replaced
    # (not OONI measurements any more: counted as unreadable).
    readable = [d for d in docs if "test_keys" in d or "test_name" in d]
    assert sorted(r[0] for r in rows) == sorted(d["measurement_uid"] for d in readable)

    urls = {
        "/",
        "/search",
        "/chart",
        "/api/v1/measurements?limit=1000&order_by=input",
        "/api/v1/aggregation?axis_x=probe_cc",
        "/api/v1/aggregation?axis_x=domain&axis_y=probe_cc",
        "/api/v1/aggregation?axis_x=measurement_start_day&format=CSV",
    }
    for uid, cc, domain in rows:
        urls |= {f"/measurement/{uid}", f"/api/v1/measurement/{uid}"}
        if cc:
            urls.add("/country/" + urllib.parse.quote(cc, safe=""))
        if domain:
            urls.add("/domain/" + urllib.parse.quote(domain, safe=""))
    transport = httpx.ASGITransport(app=create_app(db), raise_app_exceptions=False)
    failed = []
    async with httpx.AsyncClient(transport=transport, base_url="http://dideban.test") as client:
        for url in sorted(urls):
            r = await client.get(url)
            if r.status_code >= 500:
                failed.append(f"{url}: {r.status_code} {r.text[:120]}")
    assert not failed
    assert len(urls) > N  # each measurement's pages were asked for
