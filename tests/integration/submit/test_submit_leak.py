"""The probe's addresses never reach the collector: the bytes the collector received are
captured and searched, for a measurement from a site that echoes the client address in its
body (plain and base64), its headers and header lists, and in failure strings and URLs.
The same holds for what the probe queued on disk while the collector was down."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import zstandard

from dideban.collector.process import free_port, serve_collector
from dideban.collector.storage import sealed_files
from dideban.model.rawfile import read_bytes
from dideban.netx.collector_client import CollectorClient
from dideban.probe.submit import Submitter

PROBE_V4 = "198.18.77.41"
PROBE_V6 = "2001:db8:77::41"
SPELLINGS = (PROBE_V4, PROBE_V6, "2001:0db8:0077:0000:0000:0000:0000:0041", "2001:DB8:77::41")


def echo_site_measurement(n: int) -> dict[str, Any]:
    """Shaped like a web_connectivity measurement of a lab site that echoes the client."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    html = f"<html><body>Your IP: {PROBE_V4}<br>v6: {PROBE_V6.upper()}</body></html>"
    binary = b"\x00\xff\xfeclient=" + PROBE_V4.encode() + b"\x00"
    return {
        "annotations": {"network_type": "wifi"},
        "data_format_version": "0.2.0",
        "input": f"http://echo-{n}.example/?ip={PROBE_V4}",
        "measurement_start_time": now,
        "probe_asn": "AS197207",
        "probe_cc": "IR",
        "probe_ip": PROBE_V4,
        "report_id": "",
        "software_name": "dideban",
        "software_version": "0.1.0",
        "test_keys": {
            "client_resolver": PROBE_V4,
            "requests": [
                {
                    "failure": None,
                    "request": {
                        "url": f"http://echo-{n}.example/",
                        "headers_list": [["Host", f"echo-{n}.example"]],
                    },
                    "response": {
                        "code": 200,
                        "body": html,
                        "headers": {"X-Client-Ip": PROBE_V4, "X-Forwarded-For": PROBE_V6},
                        "headers_list": [
                            ["X-Client-Ip", PROBE_V4],
                            ["X-Real-Ip", f"[{PROBE_V6}]:51234"],
                        ],
                    },
                },
                {
                    "failure": f"unknown_failure: read tcp {PROBE_V4}:51234->203.0.113.9:80: reset",
                    "response": {
                        "body": {"format": "base64", "data": base64.b64encode(binary).decode()}
                    },
                },
            ],
            "tcp_connect": [{"ip": "203.0.113.9", "port": 80, "status": {"success": True}}],
            "blocking": False,
            "accessible": True,
        },
        "test_name": "web_connectivity",
        "test_start_time": now,
        "test_version": "0.5.0",
    }


def assert_no_address(raw: bytes, where: str) -> None:
    low = raw.lower()
    for s in SPELLINGS:
        assert s.lower().encode() not in low, f"{s} leaked in {where}"
    # Base64 bodies hide text from a byte search: decode them and look again.
    for token in _base64_bodies(json.loads(raw)):
        decoded = base64.b64decode(token).lower()
        for s in SPELLINGS:
            assert s.lower().encode() not in decoded, f"{s} leaked in a base64 body in {where}"


def _base64_bodies(doc: Any) -> list[str]:
    found: list[str] = []
    if isinstance(doc, dict):
        if doc.get("format") == "base64" and isinstance(doc.get("data"), str):
            found.append(doc["data"])
        for v in doc.values():
            found += _base64_bodies(v)
    elif isinstance(doc, list):
        for v in doc:
            found += _base64_bodies(v)
    return found


def test_the_checker_finds_a_leak() -> None:
    raw = json.dumps(echo_site_measurement(0)).encode()
    try:
        assert_no_address(raw, "an unscrubbed measurement")
    except AssertionError:
        return
    raise AssertionError("the leak check missed an unscrubbed measurement")


async def test_submitted_bytes_never_contain_probe_addresses(tmp_path: Path) -> None:
    async with serve_collector(tmp_path / "collector") as served:
        for compress in (False, True):
            s = Submitter(served.url, tmp_path / "queue", probe_addresses=[PROBE_V4, PROBE_V6])
            s._client = CollectorClient(served.url, compress=compress)
            await s.open("web_connectivity", "0.5.0", "IR", "AS197207", "dideban", "0.1.0")
            for n in range(3):
                out = await s.submit(echo_site_measurement(n))
                assert out.measurement_uid is not None, out.error
            await s.close()
    submissions = [
        (h, b)
        for h, b in served.captured
        if h[":path"].startswith("/report/") and not h[":path"].endswith("/close")
    ]
    assert len(submissions) == 6
    assert any(h.get("content-encoding") == "zstd" for h, _ in submissions)
    for headers, body in served.captured:
        if headers.get("content-encoding") == "zstd":
            body = zstandard.ZstdDecompressor().decompress(body, max_output_size=1 << 24)
        if body:
            assert_no_address(body, "a request body")
        assert_no_address(json.dumps(headers).encode(), "request headers")
    rows = [x for p in sealed_files(tmp_path / "collector") for x in read_bytes(p).splitlines()]
    assert len(rows) == 6
    for row in rows:
        assert_no_address(row, "the collector's raw files")
        doc = json.loads(row)
        assert doc["probe_ip"] == "127.0.0.1"
        # Nothing else was dropped: the echo body keeps its text around the address.
        assert doc["test_keys"]["requests"][0]["response"]["body"].startswith(
            "<html><body>Your IP: "
        )
    uploads = (tmp_path / "queue" / "uploads.jsonl").read_bytes()
    for line in uploads.splitlines():
        assert_no_address(line, "the uploads log")


async def test_queued_measurements_on_disk_are_scrubbed(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # down
    s = Submitter(url, tmp_path / "queue", probe_addresses=[PROBE_V4, PROBE_V6], timeout=3.0)
    await s.open("web_connectivity", "0.5.0", "IR", "AS197207", "dideban", "0.1.0")
    assert (await s.submit(echo_site_measurement(1))).queued
    await s.close()
    files = list((tmp_path / "queue" / "pending").glob("*.json"))
    assert len(files) == 1
    assert_no_address(files[0].read_bytes(), "the queue")
