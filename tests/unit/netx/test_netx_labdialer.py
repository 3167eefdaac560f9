"""The lab dialer never dials what the lab does not map, nor anything outside loopback."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from netx_kit import Page, http_handler, tcp_server

from dideban.measure import Trace, http_fetch, tcp_connect
from dideban.model import failures
from dideban.model.labnet import LabNetwork, LabView
from dideban.netx import LabDialer, NetxFailure, make_network

UNMAPPED = ["10.10.34.35", "8.8.8.8", "192.168.1.1", "172.16.0.1", "198.18.0.1", "::1"]


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Fail the test if anything tries to open a connection or create a socket."""
    calls: list[Any] = []

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        raise AssertionError(f"socket creation attempted: {args!r}")

    async def forbidden_async(*args: Any, **kwargs: Any) -> Any:
        forbidden(*args)

    # Every way netx could open a TCP connection: the stream helper, the loop's own
    # connect (all event loops share BaseEventLoop's), and the blocking socket helper.
    monkeypatch.setattr(asyncio, "open_connection", forbidden_async)
    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", forbidden_async)
    monkeypatch.setattr(asyncio.BaseEventLoop, "sock_connect", forbidden_async)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    return calls


def _lab(routes: dict[str, str], direct: bool = False) -> LabNetwork:
    view = LabView(routes=routes, resolver="127.0.0.1:1", direct=direct)
    return LabNetwork("t", "IR", "AS1", "n", "203.0.113.9", view, view, "")


@pytest.mark.parametrize("ip", UNMAPPED)
async def test_unmapped_destinations_are_refused_without_a_socket(
    ip: str, no_sockets: list[Any]
) -> None:
    dialer = LabDialer(LabView(routes={"198.51.100.10:80": "127.0.0.1:8080"}))
    with pytest.raises(NetxFailure) as info:
        await dialer.dial(ip, 80, 1.0)
    assert info.value.failure == failures.LAB_DESTINATION_REFUSED
    assert no_sockets == []


async def test_mapped_to_a_non_loopback_target_is_refused(no_sockets: list[Any]) -> None:
    dialer = LabDialer(
        LabView(routes={"198.51.100.10:80": "10.0.0.1:80", "198.51.100.11:80": "8.8.8.8:53"})
    )
    for ip in ("198.51.100.10", "198.51.100.11"):
        with pytest.raises(NetxFailure) as info:
            await dialer.dial(ip, 80, 1.0)
        assert info.value.failure == failures.LAB_DESTINATION_REFUSED
    assert no_sockets == []


def test_direct_views_allow_only_lab_addresses() -> None:
    dialer = LabDialer(LabView(direct=True))
    assert dialer.target("198.51.100.10", 443) == ("198.51.100.10", 443)
    assert dialer.target("203.0.113.5", 80) == ("203.0.113.5", 80)
    for ip in ("10.10.34.35", "8.8.8.8", "192.168.1.1", "172.16.0.1"):
        with pytest.raises(NetxFailure):
            dialer.target(ip, 80)


async def test_measure_records_the_refusal(no_sockets: list[Any]) -> None:
    network = make_network(_lab({}), "probe")
    trace = Trace(network.clock)
    result = await tcp_connect(network, trace, "10.10.34.35", 443)
    assert result.failure == failures.LAB_DESTINATION_REFUSED
    assert trace.tcp_connect[0]["status"]["failure"] == failures.LAB_DESTINATION_REFUSED
    assert trace.tcp_connect[0]["ip"] == "10.10.34.35"


async def test_mapped_destination_reaches_the_loopback_stand_in() -> None:
    pages = {"/": Page(200, [("Content-Type", "text/html")], b"<title>lab site</title>")}
    async with tcp_server(http_handler(pages)) as port:
        network = make_network(_lab({"198.51.100.10:80": f"127.0.0.1:{port}"}), "probe")
        trace = Trace(network.clock)
        result = await http_fetch(network, trace, "http://198.51.100.10/")
    assert result.failure is None and result.response is not None
    assert result.response.body == b"<title>lab site</title>"
    # Records name the lab address, never the loopback stand-in.
    assert trace.requests[0]["address"] == "198.51.100.10:80"
    assert all("127.0.0.1" not in e["address"] for e in trace.network_events)


async def test_the_guard_sees_a_real_dial(no_sockets: list[Any]) -> None:
    """The fixture above would notice a dial: a plain socket dialer trips it."""
    from dideban.netx import SocketDialer

    with pytest.raises(NetxFailure):
        await SocketDialer().dial("198.51.100.10", 80, 1.0)
    assert len(no_sockets) == 1
