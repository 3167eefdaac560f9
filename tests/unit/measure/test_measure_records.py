"""Archival records: encodings, timings on a fake clock, and http_fetch's hops."""

from __future__ import annotations

import base64

from netx_kit import Page, http_handler, tcp_server

from dideban.measure import Trace, dns_lookup_system, encode_body, encode_headers, http_fetch
from dideban.model import failures
from dideban.netx import FakeClock, NetxFailure, make_network


def test_encode_body() -> None:
    assert encode_body("سلام".encode()) == "سلام"
    assert encode_body(b"") == ""
    raw = b"\xff\xfe\x00binary"
    assert encode_body(raw) == {"format": "base64", "data": base64.b64encode(raw).decode()}


def test_encode_headers_keeps_order_and_first_value() -> None:
    mapping, listed = encode_headers([("Set-Cookie", "a=1"), ("Server", "x"), ("Set-Cookie", "b")])
    assert mapping == {"Set-Cookie": "a=1", "Server": "x"}
    assert listed == [["Set-Cookie", "a=1"], ["Server", "x"], ["Set-Cookie", "b"]]


class FakeResolver:
    def __init__(self, clock: FakeClock, table: dict[str, list[str]], cost: float) -> None:
        self.clock, self.table, self.cost = clock, table, cost

    async def lookup(self, host: str, timeout: float) -> list[str]:
        self.clock.advance(self.cost)
        if host not in self.table:
            raise NetxFailure(failures.DNS_NXDOMAIN_ERROR)
        return self.table[host]


async def test_system_lookup_record_on_a_fake_clock() -> None:
    clock = FakeClock(start=100.0)
    network = make_network(clock=clock)
    network.resolver = FakeResolver(clock, {"a.example": ["2001:db8::1", "198.51.100.1"]}, 0.25)
    trace = Trace(clock)
    clock.advance(1.5)
    ok = await dns_lookup_system(network, trace, "a.example")
    bad = await dns_lookup_system(network, trace, "b.example")
    assert ok.addrs == ["198.51.100.1", "2001:db8::1"] and ok.failure is None
    assert bad.failure == failures.DNS_NXDOMAIN_ERROR
    first, second = trace.queries
    assert (first["t0"], first["t"]) == (1.5, 1.75)
    assert (second["t0"], second["t"]) == (1.75, 2.0)
    assert first["engine"] == "getaddrinfo" and first["query_type"] == "ANY"
    assert {a["answer_type"] for a in first["answers"]} == {"A", "AAAA"}
    assert {"ipv4", "ttl", "asn", "as_org_name"} <= set(first["answers"][1])
    assert second["answers"] is None and second["failure"] == failures.DNS_NXDOMAIN_ERROR
    assert [first["transaction_id"], second["transaction_id"]] == [1, 2]


async def test_http_fetch_follows_redirects_newest_first() -> None:
    seen: list[list[tuple[str, str]]] = []
    async with tcp_server(http_handler({"/final": Page(200, [("X-B", "2")], b"done")}, seen)) as b:
        pages = {
            "/": Page(301, [("Location", "/next")]),
            "/next": Page(302, [("Location", f"http://localhost:{b}/final")]),
        }
        async with tcp_server(http_handler(pages, seen)) as a:
            network = make_network(timeouts={"connect": 1.0, "http": 1.0})
            trace = Trace(network.clock)
            result = await http_fetch(network, trace, f"http://127.0.0.1:{a}/", [("Accept", "*/*")])
    assert result.failure is None and result.hops == 3
    assert result.url == f"http://localhost:{b}/final"
    assert [r["request"]["url"] for r in trace.requests] == [
        f"http://localhost:{b}/final",
        f"http://127.0.0.1:{a}/next",
        f"http://127.0.0.1:{a}/",
    ]
    newest = trace.requests[0]
    assert newest["response"]["code"] == 200 and newest["response"]["body"] == "done"
    assert ["X-B", "2"] in newest["response"]["headers_list"]
    assert newest["request"]["headers_list"][0] == ["Host", f"localhost:{b}"]
    assert newest["request"]["headers"]["Accept"] == "*/*"
    assert newest["request"]["method"] == "GET" and newest["failure"] is None
    assert trace.requests[2]["response"]["code"] == 301
    # Headers go out in the order given, Host first.
    assert [k for k, _ in seen[0]][:2] == ["Host", "Accept"]


async def test_http_fetch_too_many_redirects() -> None:
    pages = {"/loop": Page(302, [("Location", "/loop")])}
    async with tcp_server(http_handler(pages)) as port:
        network = make_network(timeouts={"connect": 1.0, "http": 1.0})
        trace = Trace(network.clock)
        result = await http_fetch(network, trace, f"http://127.0.0.1:{port}/loop")
    assert result.failure == failures.HTTP_TOO_MANY_REDIRECTS
    assert len(trace.requests) == 11


async def test_http_fetch_binary_and_truncated_bodies() -> None:
    pages = {"/bin": Page(200, [], b"\x89PNG\xff\x00"), "/big": Page(200, [], b"a" * 5000)}
    async with tcp_server(http_handler(pages)) as port:
        network = make_network(timeouts={"connect": 1.0, "http": 1.0})
        trace = Trace(network.clock)
        await http_fetch(network, trace, f"http://127.0.0.1:{port}/bin")
        big = await http_fetch(network, trace, f"http://127.0.0.1:{port}/big", max_body=1000)
    binary, truncated = trace.requests[1], trace.requests[0]
    assert binary["response"]["body"] == {
        "format": "base64",
        "data": base64.b64encode(b"\x89PNG\xff\x00").decode(),
    }
    assert truncated["response"]["body"] == "a" * 1000
    assert truncated["response"]["body_is_truncated"] is True
    assert big.response is not None and big.response.body_is_truncated


async def test_http_fetch_unresolvable_host_is_recorded() -> None:
    clock = FakeClock()
    network = make_network(clock=clock)
    network.resolver = FakeResolver(clock, {}, 0.1)
    trace = Trace(clock)
    result = await http_fetch(network, trace, "http://missing.example/")
    assert result.failure == failures.DNS_NXDOMAIN_ERROR
    assert trace.requests[0]["failure"] == failures.DNS_NXDOMAIN_ERROR
    assert trace.requests[0]["response"] == {
        "body": "",
        "body_is_truncated": False,
        "code": 0,
        "headers_list": [],
        "headers": {},
    }


async def test_http_fetch_sends_cookies_back_along_redirects() -> None:
    seen: list[list[tuple[str, str]]] = []
    pages = {
        "/": Page(302, [("Set-Cookie", "session=abc; Path=/; HttpOnly"), ("Location", "/in")]),
        "/in": Page(200, [], b"welcome"),
    }
    async with tcp_server(http_handler(pages, seen)) as port:
        network = make_network(timeouts={"connect": 1.0, "http": 1.0})
        trace = Trace(network.clock)
        # A caller's Host or Cookie header is not sent: Host comes from the URL.
        result = await http_fetch(
            network, trace, f"http://127.0.0.1:{port}/", [("Host", "evil"), ("Accept", "*/*")]
        )
    assert result.failure is None and result.response is not None
    assert ("Cookie", "session=abc") in seen[1]
    assert not any(k == "Cookie" for k, _ in seen[0])
    assert [k for k, _ in seen[0]].count("Host") == 1 and ("Host", "evil") not in seen[0]
    assert trace.requests[0]["request"]["headers"]["Cookie"] == "session=abc"


def test_set_cookies() -> None:
    from dideban.netx import set_cookies

    headers = [("Set-Cookie", "a=1; Path=/"), ("set-cookie", "b = 2"), ("Set-Cookie", "junk"),
               ("Server", "x")]  # fmt: skip
    assert set_cookies(headers) == {"a": "1", "b": "2"}
