"""The probe's own addresses appear nowhere in what it writes."""

from __future__ import annotations

import ipaddress
import re
import subprocess

from probe_lab_run import iran_run


def local_addresses() -> set[str]:
    """Every non-loopback address of this machine's interfaces (IPv4 and IPv6)."""
    found: set[str] = set()
    out = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True, timeout=10)
    for match in re.finditer(r"\binet6?\s+([0-9a-fA-F:.]+)/\d+", out.stdout):
        addr = ipaddress.ip_address(match.group(1))
        if not addr.is_loopback:
            found.add(str(addr))
    return found


def _occurs(address: str, text: str) -> bool:
    if ":" in address:
        return (
            re.search(rf"(?<![0-9a-f:]){re.escape(address)}(?![0-9a-f]|:[0-9a-f])", text, re.I)
            is not None
        )
    return re.search(rf"(?<![\d.]){re.escape(address)}(?!\d|\.\d)", text) is not None


def test_machine_has_addresses_to_look_for() -> None:
    # The scan below is only meaningful if it scans for something.
    assert local_addresses()
    assert iran_run().network.probe_public_ip


def test_no_measurement_contains_the_probe_addresses() -> None:
    run = iran_run()
    secrets = {run.network.probe_public_ip} | local_addresses()
    leaks = [
        (m["input"], a)
        for line, m in zip(run.lines, run.measurements, strict=True)
        for a in secrets
        if _occurs(a, line)
    ]
    assert leaks == []
    assert all(m["probe_ip"] == "127.0.0.1" for m in run.measurements)


def test_echo_site_was_scrubbed_not_dropped() -> None:
    # The lab's echo site puts the probe's public address in its body and headers: it must be
    # there as 127.0.0.1 (scrubbed), and the response itself must still be recorded.
    from dideban.lab.scenario import load_scenario

    echo = [s for s in load_scenario("iran").sites if s.echo_client]
    assert echo
    for site in echo:
        m = iran_run().by_input()[site.url]
        requests = m["test_keys"]["requests"]
        assert requests and requests[0]["response"] and requests[0]["response"]["code"] == 200
        assert "127.0.0.1" in str(requests[0]["response"])
