"""The probe learns its own interface addresses to scrub them, without sending a packet."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from dideban.netx.local import _ipv6_addresses, local_addresses


def test_ipv6_lines_of_proc_net_if_inet6_are_decoded() -> None:
    text = (
        "00000000000000000000000000000001 01 80 10 80       lo\n"
        "fe80000000000000021122fffe334455 02 40 20 80     eth0\n"
    )
    assert _ipv6_addresses(text) == ["::1", "fe80::211:22ff:fe33:4455"]


def test_loopback_is_not_listed() -> None:
    assert not any(a == "::1" or a.startswith("127.") for a in local_addresses())


@pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2's ip is not installed")
def test_every_address_ip_addr_shows_is_found() -> None:
    shown = json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True, check=True).stdout)
    expected = {
        info["local"]
        for link in shown
        for info in link.get("addr_info", [])
        if not info["local"].startswith("127.") and info["local"] != "::1"
    }
    assert expected, "this machine has no non-loopback address to compare with"
    assert expected <= set(local_addresses())


def test_the_host_namespace_is_not_a_lab_namespace() -> None:
    from dideban.netx.local import current_netns_name, inside_lab_netns

    name = current_netns_name()
    assert name is None or not name.startswith("dideban-")
    assert inside_lab_netns() is False


def test_a_netns_lab_cannot_be_dialled_from_outside_its_namespaces() -> None:
    from dideban.model.labnet import LabNetwork, LabView
    from dideban.netx import make_network

    lab = LabNetwork(
        name="iran",
        probe_cc="IR",
        probe_asn="AS197207",
        probe_network_name="MCI",
        probe_public_ip="203.0.113.7",
        probe_view=LabView(resolver="198.18.254.53:53", direct=True),
        control_view=LabView(resolver="198.51.100.53:53", direct=True),
        ca_pem="",
    )
    with pytest.raises(ValueError, match="network namespaces"):
        make_network(lab, "probe")
