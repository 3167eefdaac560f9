"""The userspace lab's life cycle: state file, ISP profiles, what it dials, clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest

from dideban.lab import UserspaceLab, find_running_lab
from dideban.lab.scenario import ScenarioError, load_scenario
from dideban.lab.state import state_path
from dideban.model.labnet import LabNetwork, LabView, is_loopback

SCENARIO = load_scenario("iran")


async def _open(network: LabNetwork, domain: str, port: int) -> tuple[Any, Any]:
    target = network.probe_view.route(SCENARIO.site(domain).ip, port)
    assert target is not None
    host, p = target.rsplit(":", 1)
    return await asyncio.wait_for(asyncio.open_connection(host, int(p)), 2)


async def _tls_outcome(network: LabNetwork, domain: str, timeout: float) -> str:
    """'ok', 'reset' or 'timeout' for a TLS handshake with SNI `domain` through the censor."""
    ctx = ssl.create_default_context(cadata=network.ca_pem)
    target = network.probe_view.route(SCENARIO.site(domain).ip, 443)
    assert target is not None
    host, p = target.rsplit(":", 1)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, int(p), ssl=ctx, server_hostname=domain), timeout
        )
    except TimeoutError:
        return "timeout"
    except ConnectionResetError:
        return "reset"
    writer.transport.abort()
    return "ok"


async def test_state_file_is_written_while_running_and_removed_after(tmp_path: Path) -> None:
    async with UserspaceLab(SCENARIO, state_dir=tmp_path) as lab:
        path = state_path("iran", tmp_path)
        assert path.exists()
        assert LabNetwork.from_json(path.read_text(encoding="utf-8")) == lab.network
        assert find_running_lab("iran", tmp_path) == lab.network
        assert find_running_lab("other", tmp_path) is None
    assert not path.exists()
    assert find_running_lab("iran", tmp_path) is None


def test_find_running_lab_ignores_a_stale_state_file(tmp_path: Path) -> None:
    stale = LabNetwork(
        name="iran",
        probe_cc="IR",
        probe_asn="AS197207",
        probe_network_name="n",
        probe_public_ip="203.0.113.7",
        probe_view=LabView(),
        control_view=LabView(),
        ca_pem="",
        pid=2**22 + 12345,  # above Linux's largest pid_max: never a live process
    )
    state_path("iran", tmp_path).write_text(stale.to_json(), encoding="utf-8")
    assert find_running_lab("iran", tmp_path) is None
    state_path("broken", tmp_path).write_text("{not json", encoding="utf-8")
    assert find_running_lab("broken", tmp_path) is None


async def test_profiles_set_the_network_and_the_tls_blocking_style() -> None:
    async with UserspaceLab(SCENARIO) as mci:
        assert (mci.network.probe_asn, mci.network.probe_network_name) == (
            "AS197207",
            "Mobile Communication Company of Iran PLC",
        )
        assert await _tls_outcome(mci.network, "www.instagram.com", 1.0) == "reset"
    async with UserspaceLab(SCENARIO, profile="TCI-like") as tci:
        assert tci.network.probe_asn == "AS58224"
        # TCI-like drops the ClientHello instead of resetting: the handshake times out.
        assert await _tls_outcome(tci.network, "www.instagram.com", 0.6) == "timeout"
        assert await _tls_outcome(tci.network, "www.digikala.com", 2.0) == "ok"
    with pytest.raises(ScenarioError, match=r"no ISP profile 'XYZ'.*MCI-like"):
        UserspaceLab(SCENARIO, profile="XYZ")


async def test_the_lab_only_ever_dials_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connect the lab makes (relays, the backlog filler) goes to 127.0.0.1: route
    keys such as 10.10.34.35 or 198.18.x.y are values, never destinations."""
    dialled: list[Any] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> None:
        dialled.append(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        dialled.append(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    async with UserspaceLab(SCENARIO) as lab:
        net = lab.network
        assert await _tls_outcome(net, "www.digikala.com", 2.0) == "ok"
        assert await _tls_outcome(net, "www.instagram.com", 2.0) == "reset"
        for domain in ("www.radiofarda.com", "www.yjc.ir"):
            reader, writer = await _open(net, domain, 80)
            writer.write(f"GET / HTTP/1.1\r\nHost: {domain}\r\n\r\n".encode())
            assert (await asyncio.wait_for(reader.read(4096), 2)).startswith(b"HTTP/1.1")
            writer.close()
    assert dialled, "the patch saw no connect at all"
    for address in dialled:
        assert is_loopback(address[0]), address


async def test_stopping_closes_every_listener_and_held_connection() -> None:
    async with UserspaceLab(SCENARIO) as lab:
        ports = lab.ports
        # A flow stalled by the censor is open when the lab stops.
        reader, writer = await _open(lab.network, "www.iranintl.com", 443)
        writer.write(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello
        await writer.drain()
        await asyncio.sleep(0.05)
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    for name in ("censor_tls", "censor_http", "site_https", "control_http", "blockpage"):
        with pytest.raises(ConnectionRefusedError):
            await asyncio.wait_for(asyncio.open_connection("127.0.0.1", ports[name]), 2)
