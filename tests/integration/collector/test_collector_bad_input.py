"""The bad-input matrix: every refusal is a 4xx with the one error shape, and nothing under
the data dir changes (the tree is hashed before and after each request)."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import collector_kit
import httpx
import pytest
import zstandard
from collector_kit import OPEN_REQUEST

LIMIT = 64 * 1024
NOW = dt.datetime.now(dt.UTC)


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def measurement(rid: str, **changes: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "data_format_version": "0.2.0",
        "measurement_start_time": NOW.strftime("%Y-%m-%d %H:%M:%S"),
        "probe_asn": "AS197207",
        "probe_cc": "IR",
        "probe_ip": "127.0.0.1",
        "report_id": rid,
        "software_name": "dideban",
        "software_version": "0.1.0",
        "test_keys": {"blocking": False},
        "test_name": "web_connectivity",
        "test_version": "0.5.0",
        "input": "http://example.org/",
    }
    for k, v in changes.items():
        if v is _DROP:
            del m[k]
        else:
            m[k] = v
    return m


_DROP = object()
OPEN = OPEN_REQUEST


@dataclass
class Ctx:
    client: httpx.AsyncClient
    data_dir: Path
    report_id: str
    closed_id: str


def in_process(data_dir: Path) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
    return collector_kit.in_process(data_dir, max_body_bytes=LIMIT, seal_after=3600)


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[Ctx]:
    data_dir = tmp_path / "data"
    async with in_process(data_dir) as client:
        rid = (await client.post("/report", json=OPEN)).json()["report_id"]
        closed = (await client.post("/report", json=OPEN)).json()["report_id"]
        assert (await client.post(f"/report/{closed}/close")).status_code == 200
        doc = {"format": "json", "content": measurement(rid)}
        ok = await client.post(f"/report/{rid}", json=doc)
        assert ok.status_code == 200, ok.text
        yield Ctx(client, data_dir, rid, closed)


JSON = {"content-type": "application/json"}


def _submit(c: Ctx, content: Any, rid: str | None = None) -> Any:
    rid = rid or c.report_id
    return c.client.post(f"/report/{rid}", json={"format": "json", "content": content})


async def _chunks() -> AsyncIterator[bytes]:
    for _ in range(3):
        yield b" " * 40000


CASES: dict[str, Any] = {
    "malformed json": lambda c: c.client.post(
        f"/report/{c.report_id}", content=b'{"format": "json", "content": {', headers=JSON
    ),
    "not utf-8": lambda c: c.client.post(
        f"/report/{c.report_id}", content=b'{"format": "\xff\xfe"}', headers=JSON
    ),
    "wrong content type": lambda c: c.client.post(
        f"/report/{c.report_id}",
        content=b'{"format": "json", "content": {}}',
        headers={"content-type": "text/plain"},
    ),
    "bad zstd": lambda c: c.client.post(
        f"/report/{c.report_id}",
        content=b"\x28\xb5\x2f\xfd garbage that is not a frame",
        headers={**JSON, "content-encoding": "zstd"},
    ),
    "unsupported encoding": lambda c: c.client.post(
        f"/report/{c.report_id}", content=b"{}", headers={**JSON, "content-encoding": "br"}
    ),
    "body over limit": lambda c: c.client.post(
        f"/report/{c.report_id}", content=b" " * (LIMIT + 1), headers=JSON
    ),
    "body over limit, chunked": lambda c: c.client.post(
        f"/report/{c.report_id}", content=_chunks(), headers=JSON
    ),
    "zstd bomb over limit": lambda c: c.client.post(
        f"/report/{c.report_id}",
        content=zstandard.ZstdCompressor().compress(b" " * (LIMIT * 4)),
        headers={**JSON, "content-encoding": "zstd"},
    ),
    "unknown report": lambda c: _submit(
        c,
        measurement("20261129T000000Z_webconnectivity_IR_197207_n1_AAAAAAAAAAAAAAAA"),
        "20261129T000000Z_webconnectivity_IR_197207_n1_AAAAAAAAAAAAAAAA",
    ),
    "malformed report id": lambda c: _submit(c, measurement("x"), "..%2F..%2Fetc"),
    "closed report": lambda c: _submit(c, measurement(c.closed_id), c.closed_id),
    "cc disagrees with report": lambda c: _submit(c, measurement(c.report_id, probe_cc="CN")),
    "asn disagrees with report": lambda c: _submit(c, measurement(c.report_id, probe_asn="AS1")),
    "test disagrees with report": lambda c: _submit(
        c, measurement(c.report_id, test_name="dnscheck")
    ),
    "report_id field disagrees": lambda c: _submit(
        c, measurement(c.report_id, report_id=c.closed_id)
    ),
    "missing content": lambda c: c.client.post(f"/report/{c.report_id}", json={"format": "json"}),
    "missing test_keys": lambda c: _submit(c, measurement(c.report_id, test_keys=_DROP)),
    "missing probe_cc": lambda c: _submit(c, measurement(c.report_id, probe_cc=_DROP)),
    "wrong type probe_asn": lambda c: _submit(c, measurement(c.report_id, probe_asn=197207)),
    "wrong type test_keys": lambda c: _submit(c, measurement(c.report_id, test_keys=[1])),
    "content is a list": lambda c: _submit(c, [measurement(c.report_id)]),
    "format yaml": lambda c: c.client.post(
        f"/report/{c.report_id}", json={"format": "yaml", "content": "x: 1"}
    ),
    "probe_cc ZZ": lambda c: _submit(c, measurement(c.report_id, probe_cc="ZZ")),
    "bad measurement time": lambda c: _submit(
        c, measurement(c.report_id, measurement_start_time="yesterday")
    ),
    "measurement in the future": lambda c: _submit(
        c,
        measurement(
            c.report_id,
            measurement_start_time=(NOW + dt.timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S"),
        ),
    ),
    "open report ZZ": lambda c: c.client.post("/report", json={**OPEN, "probe_cc": "ZZ"}),
    "open report ASN 0": lambda c: c.client.post("/report", json={**OPEN, "probe_asn": "AS0"}),
    "open report missing key": lambda c: c.client.post(
        "/report", json={k: v for k, v in OPEN.items() if k != "test_name"}
    ),
    "open report path-like test_name": lambda c: c.client.post(
        "/report", json={**OPEN, "test_name": "../../etc"}
    ),
    "open report wrong format": lambda c: c.client.post("/report", json={**OPEN, "format": "yaml"}),
    "check-in wrong type": lambda c: c.client.post(
        "/api/v1/check-in", json={"probe_cc": "IR", "probe_asn": "AS1", "charging": "yes"}
    ),
    "unknown path": lambda c: c.client.post("/api/v2/nothing", json={}),
    "wrong method": lambda c: c.client.get(f"/report/{c.report_id}"),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_bad_input_is_4xx_with_one_shape_and_writes_nothing(ctx: Ctx, case: str) -> None:
    before = tree_hash(ctx.data_dir)
    response = await CASES[case](ctx)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] and body["error"]["message"]
    assert tree_hash(ctx.data_dir) == before
    metrics = (await ctx.client.get("/metrics")).text
    assert f'rejections_total{{reason="{body["error"]["code"]}"}} 1' in metrics


async def test_valid_zstd_submission_is_accepted(ctx: Ctx) -> None:
    import json

    doc = {"format": "json", "content": measurement(ctx.report_id, input="http://zstd.example/")}
    body = zstandard.ZstdCompressor().compress(json.dumps(doc).encode())
    r = await ctx.client.post(
        f"/report/{ctx.report_id}", content=body, headers={**JSON, "content-encoding": "zstd"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["measurement_uid"].endswith(tuple("0123456789abcdef"))
