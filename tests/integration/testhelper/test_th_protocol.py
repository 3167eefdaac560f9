"""The control test helper: protocol round-trip in-process (httpx ASGI) and over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from netx_kit import CA, Page, dns_server, http_handler, simple_plan, tcp_server

from dideban.model import failures
from dideban.model.labnet import LabNetwork, LabView
from dideban.netx import api_request, make_network
from dideban.testhelper import create_app
from dideban.testhelper.app import MAX_BODY
from dideban.testhelper.control import REFUSED_DESTINATION

SITE_IP = "198.51.100.10"
PAGE = b"<html><head><title>Lab news site</title></head><body>hello</body></html>"


@contextlib.asynccontextmanager
async def lab_world(tmp: Path, delay: float = 0.0) -> AsyncIterator[LabNetwork]:
    """A tiny lab: site.example at 198.51.100.10 (HTTP on :80, HTTPS on :443) played by
    loopback servers, and a control-view resolver that answers honestly."""
    ca = CA(tmp)
    pages = {"/": Page(200, [("Content-Type", "text/html"), ("Server", "lab")], PAGE, delay)}
    async with (
        dns_server(simple_plan({"site.example": [SITE_IP]})) as (resolver, _proto),
        tcp_server(http_handler(pages)) as http_port,
        tcp_server(http_handler(pages), ca.server_context(["site.example"])) as https_port,
    ):
        view = LabView(
            routes={
                f"{SITE_IP}:80": f"127.0.0.1:{http_port}",
                f"{SITE_IP}:443": f"127.0.0.1:{https_port}",
            },
            resolver=resolver,
        )
        yield LabNetwork(
            "t", "IR", "AS1", "n", "203.0.113.9", LabView(), view, ca.pem,
            timeouts={"dns": 1.0, "connect": 1.0, "tls": 1.0, "http": 2.0},
        )  # fmt: skip


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://th")


def control_request(url: str, endpoints: list[str]) -> dict[str, Any]:
    return {
        "http_request": url,
        "http_request_headers": {"Accept": ["*/*"], "User-Agent": ["dideban-test"]},
        "tcp_connect": endpoints,
    }


async def test_round_trip_in_lab_mode(tmp_path: Path) -> None:
    async with lab_world(tmp_path) as lab:
        app = create_app(make_network(lab, "control", timeouts=lab.timeouts))
        async with client(app) as c:
            r = await c.post(
                "/",
                json=control_request(
                    "https://site.example/", [f"{SITE_IP}:443", "10.10.34.35:443"]
                ),
            )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {
        "tcp_connect",
        "tls_handshake",
        "quic_handshake",
        "http_request",
        "http3_request",
        "dns",
        "ip_info",
    }
    assert body["dns"] == {"failure": None, "addrs": [SITE_IP]}
    assert body["tcp_connect"][f"{SITE_IP}:443"] == {"status": True, "failure": None}
    # A lab DNS answer such as 10.10.34.35 stays a value: the lab dialer refuses it.
    assert body["tcp_connect"]["10.10.34.35:443"] == {
        "status": False,
        "failure": failures.LAB_DESTINATION_REFUSED,
    }
    assert body["tls_handshake"][f"{SITE_IP}:443"] == {
        "server_name": "site.example",
        "status": True,
        "failure": None,
    }
    http = body["http_request"]
    assert http["status_code"] == 200 and http["failure"] is None
    assert http["body_length"] == len(PAGE) and http["title"] == "Lab news site"
    assert http["headers"]["Server"] == "lab" and http["discovered_h3_endpoint"] == ""
    assert body["http3_request"] is None
    # Lab addresses play public ones: resolved by both sides, valid for the domain, no bogon.
    assert body["ip_info"][SITE_IP]["flags"] == 1 | 2 | 8
    assert body["ip_info"]["10.10.34.35"]["flags"] == 1 | 4


async def test_dns_failure_is_reported(tmp_path: Path) -> None:
    async with lab_world(tmp_path) as lab:
        app = create_app(make_network(lab, "control", timeouts=lab.timeouts))
        async with client(app) as c:
            r = await c.post("/", json=control_request("http://missing.example/", []))
    body = r.json()
    assert body["dns"] == {"failure": failures.DNS_NXDOMAIN_ERROR, "addrs": []}
    assert body["http_request"]["failure"] == failures.DNS_NXDOMAIN_ERROR
    assert body["tcp_connect"] == {}


async def test_private_targets_refused_outside_lab_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    dials: list[Any] = []

    async def no_dial(*args: Any, **kwargs: Any) -> Any:
        dials.append(args)
        raise AssertionError("dialled")

    monkeypatch.setattr(asyncio, "open_connection", no_dial)
    app = create_app(make_network(timeouts={"connect": 1.0, "http": 1.0}))
    endpoints = ["10.10.34.35:80", "127.0.0.1:80", "192.168.1.1:80", "169.254.1.1:80",
                 "172.16.0.1:80", "198.18.0.1:80", "[::1]:80"]  # fmt: skip
    async with client(app) as c:
        r = await c.post("/", json=control_request("http://127.0.0.1/", endpoints))
    body = r.json()
    assert r.status_code == 200
    for endpoint in endpoints:
        assert body["tcp_connect"][endpoint] == {"status": False, "failure": REFUSED_DESTINATION}
    assert body["http_request"]["failure"] == REFUSED_DESTINATION
    assert dials == []


async def test_health_check() -> None:
    async with client(create_app(make_network())) as c:
        r = await c.get("/")
    assert r.status_code == 200 and r.json()["status"] == "ok"


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{not json", {"content-type": "application/json"}, 400, "bad_json"),
        (b"[]", {"content-type": "application/json"}, 400, "bad_request"),
        (b'{"http_request": "ftp://x/"}', {"content-type": "application/json"}, 400, "bad_request"),
        (
            b'{"http_request": "http://x.example/", "tcp_connect": ["nope"]}',
            {"content-type": "application/json"},
            400,
            "bad_request",
        ),
        (b'{"http_request": "http://x.example/"}', {"content-type": "text/plain"}, 415,
         "unsupported_media_type"),
        *[
            (json.dumps({"http_request": "http://x.example/", "tcp_connect": [e]}).encode(),
             {"content-type": "application/json"}, 400, "bad_request")
            # Ports int() takes and a socket does not (or should not).
            for e in ["198.18.0.1:99999", "198.18.0.1:-1", "198.18.0.1:+80", "198.18.0.1:8_0",
                      "198.18.0.1: 80", "198.18.0.1:٤٤٣", "[::1]:"]
        ],
        (b'{"http_request": "http://[::1"}', {"content-type": "application/json"}, 400,
         "bad_request"),
        (b'{"http_request": "http://x.example:99999/"}', {"content-type": "application/json"},
         400, "bad_request"),
    ],
)  # fmt: skip
async def test_bad_input_gets_the_json_error_shape(
    body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    async with client(create_app(make_network())) as c:
        r = await c.post("/", content=body, headers=headers)
    assert r.status_code == status
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


async def test_method_not_allowed_and_not_found() -> None:
    async with client(create_app(make_network())) as c:
        put = await c.put("/", content=b"{}")
        missing = await c.get("/nope")
    assert put.status_code == 405 and put.json()["error"]["code"] == "method_not_allowed"
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_body_over_the_cap_is_413() -> None:
    assert MAX_BODY == 16 * 1024 * 1024
    app = create_app(make_network(), max_body=1000)
    payload = json.dumps(control_request("http://x.example/", [])).encode() + b" " * 2000
    async with client(app) as c:
        r = await c.post("/", content=payload, headers={"content-type": "application/json"})

        async def chunks() -> AsyncIterator[bytes]:
            yield payload[:600]
            yield payload[600:]

        streamed = await c.post("/", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    assert streamed.status_code == 413


async def test_saturated_helper_answers_503(tmp_path: Path) -> None:
    async with lab_world(tmp_path, delay=0.5) as lab:
        app = create_app(make_network(lab, "control", timeouts=lab.timeouts), max_in_flight=1)
        async with client(app) as c:
            slow = asyncio.create_task(
                c.post("/", json=control_request("http://site.example/", []))
            )
            await asyncio.sleep(0.2)
            busy = await c.post("/", json=control_request("http://site.example/", []))
            first = await slow
    assert busy.status_code == 503 and busy.json()["error"]["code"] == "overloaded"
    assert first.status_code == 200 and first.json()["http_request"]["status_code"] == 200


async def test_round_trip_over_loopback(tmp_path: Path) -> None:
    async with lab_world(tmp_path) as lab:
        app = create_app(make_network(lab, "control", timeouts=lab.timeouts))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            for _ in range(300):
                if server.started:
                    break
                await asyncio.sleep(0.01)
            # The probe's side: a lab network whose API calls reach loopback directly.
            probe = make_network(lab, "probe", timeouts=lab.timeouts)
            url = f"http://127.0.0.1:{port}/"
            health = await api_request(probe, "GET", url)
            answer = await api_request(
                probe, "POST", url, json_body=control_request("http://site.example/", [])
            )
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 5)
            sock.close()
    assert health.status == 200 and health.json()["status"] == "ok"
    assert answer.status == 200
    body = answer.json()
    assert body["http_request"]["title"] == "Lab news site"
    assert body["tcp_connect"][f"{SITE_IP}:80"] == {"status": True, "failure": None}
    assert body["tls_handshake"] == {}


class RecordingDialer:
    """Plays every public address with one loopback server, and remembers what was dialled
    (no packet ever goes to the address itself)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.dialled: list[str] = []

    async def dial(self, ip: str, port: int, timeout: float) -> Any:
        from dideban.netx.network import Conn

        self.dialled.append(ip)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        return Conn(reader, writer, f"{ip}:{port}")


class FixedResolver:
    def __init__(self, addrs: list[str]) -> None:
        self.addrs = addrs

    async def lookup(self, host: str, timeout: float) -> list[str]:
        return self.addrs


async def test_redirect_to_a_private_address_is_not_followed_outside_lab_mode() -> None:
    from netx_kit import Page, http_handler, tcp_server

    pages = {"/": Page(302, [("Location", "http://10.0.0.1/admin")])}
    async with tcp_server(http_handler(pages)) as port:
        network = make_network(timeouts={"connect": 1.0, "http": 1.0})
        fake = RecordingDialer(port)
        network.dialer = fake
        network.resolver = FixedResolver(["93.184.216.34"])
        async with client(create_app(network)) as c:
            r = await c.post("/", json=control_request("http://public.example/", []))
    body = r.json()
    assert body["tcp_connect"]["93.184.216.34:80"] == {"status": True, "failure": None}
    assert body["http_request"]["failure"] == REFUSED_DESTINATION
    assert "10.0.0.1" not in fake.dialled and fake.dialled


def test_global_only_dialer_policy() -> None:
    from dideban.netx.network import is_global_unicast

    for ip in ("10.10.34.35", "127.0.0.1", "192.168.1.1", "172.16.0.1", "169.254.1.1",
               "198.18.0.1", "100.64.0.1", "0.0.0.0", "224.0.0.1", "::1", "fe80::1",
               "fc00::1", "2001:db8::1"):  # fmt: skip
        assert not is_global_unicast(ip), ip
    for ip in ("93.184.216.34", "8.8.8.8", "2606:4700::1111"):
        assert is_global_unicast(ip), ip


async def test_an_internal_error_keeps_the_json_shape(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import dideban.testhelper.app as app_module

    async def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(app_module, "measure_control", boom)
    async with client(create_app(make_network())) as c:
        r = await c.post("/", json=control_request("http://x.example/", []))
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert "control measurement failed" in caplog.text
