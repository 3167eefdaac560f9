"""netx + measure against the userspace censorship lab (both views of iran.yaml)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from dideban.lab import UserspaceLab
from dideban.lab.scenario import load_scenario
from dideban.measure import Trace, dns_lookup_system, dns_lookup_udp, http_fetch
from dideban.model.labnet import LabNetwork
from dideban.netx import make_network, parse_url


@pytest.fixture
async def lab() -> AsyncIterator[tuple[LabNetwork, list[tuple[str, object]]]]:
    scenario = load_scenario("iran")
    async with UserspaceLab(scenario) as running:
        yield running.network, [(s.url, s.expect) for s in scenario.sites]


def _site(sites: list[tuple[str, object]], blocking: object, accessible: bool) -> str:
    for url, expect in sites:
        if getattr(expect, "blocking", None) == blocking and (
            getattr(expect, "accessible", None) is accessible
        ):
            return url
    pytest.skip(f"iran.yaml has no site with blocking={blocking!r}")


async def test_dns_blocked_site_differs_between_views(
    lab: tuple[LabNetwork, list[tuple[str, object]]],
) -> None:
    network, sites = lab
    host = parse_url(_site(sites, "dns", False)).host
    probe = make_network(network, "probe", timeouts=network.timeouts)
    control = make_network(network, "control", timeouts=network.timeouts)
    probe_trace = Trace(probe.clock)
    probe_udp = await dns_lookup_udp(probe, probe_trace, host)
    honest = await dns_lookup_system(control, Trace(control.clock), host)
    assert honest.failure is None and honest.addrs
    assert set(probe_udp.addrs) != set(honest.addrs)
    assert all(q["resolver_address"] == network.probe_view.resolver for q in probe_trace.queries)


async def test_accessible_site_fetches_and_records_no_loopback(
    lab: tuple[LabNetwork, list[tuple[str, object]]],
) -> None:
    network, sites = lab
    url = _site(sites, False, True)
    probe = make_network(network, "probe", timeouts=network.timeouts)
    trace = Trace(probe.clock)
    dns = await dns_lookup_system(probe, trace, parse_url(url).host)
    result = await http_fetch(probe, trace, url)
    assert dns.failure is None
    assert result.failure is None and result.response is not None
    assert result.response.status == 200
    assert trace.requests[0]["address"].split(":")[0] in dns.addrs
    # The loopback stand-ins that play the lab's sites never show in a record.
    assert "127.0.0.1" not in json.dumps(trace.archival())
