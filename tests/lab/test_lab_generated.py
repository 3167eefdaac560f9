"""Scenarios generated from the Iranian test list (ir.csv, 903 URLs), and a lab running one."""

from __future__ import annotations

import collections
import csv
import time
from pathlib import Path
from urllib.parse import urlsplit

import dns.asyncquery
import dns.message
import dns.rdatatype
import pytest
import yaml

from dideban.lab import UserspaceLab, generate_scenario, scenario_to_yaml
from dideban.lab.generate import applies_to, expectation_for
from dideban.lab.scenario import ScenarioError, parse_scenario
from dideban.model.labnet import is_lab_address

IR_CSV = Path(__file__).resolve().parents[2] / "src" / "dideban" / "data" / "test-lists" / "ir.csv"


def _hosts() -> dict[str, set[str]]:
    out: dict[str, set[str]] = collections.defaultdict(set)
    with IR_CSV.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            parts = urlsplit(row["url"])
            assert parts.hostname
            out[parts.hostname.lower()].add(parts.scheme)
    return out


def test_one_site_per_hostname_about_30_percent_blocked() -> None:
    hosts = _hosts()
    sc = generate_scenario(IR_CSV, seed=1)
    assert len(sc.sites) == len(hosts) and len(hosts) > 850
    assert {s.domain for s in sc.sites} == set(hosts)
    assert len({s.ip for s in sc.sites}) == len(sc.sites)
    assert all(is_lab_address(s.ip) and s.ip.startswith(("198.18.", "198.19.")) for s in sc.sites)
    censored = [s for s in sc.sites if s.censor]
    assert abs(len(censored) / len(sc.sites) - 0.3) < 0.01
    used = collections.Counter(c.technique for s in censored for c in s.censor)
    assert len(used) >= 8, used  # a real mix
    for s in sc.sites:
        assert s.expect == expectation_for(s)
        for c in s.censor:
            assert applies_to(c.technique, hosts[s.domain]), (s.url, c.technique)
        assert (s.expect is not None) and (s.expect.blocking is False) == (not s.censor)
    # Same seed, same scenario; another seed, another draw.
    assert generate_scenario(IR_CSV, seed=1) == sc
    assert generate_scenario(IR_CSV, seed=2).sites != sc.sites


def test_fraction_and_mix_are_honoured_and_checked() -> None:
    sc = generate_scenario(IR_CSV, blocked_fraction=0.5, mix={"tcp_reset": 1}, seed=3)
    assert sum(1 for s in sc.sites if s.censor) == round(0.5 * len(sc.sites))
    assert {c.technique for s in sc.sites for c in s.censor} == {"tcp_reset"}
    assert not any(s.censor for s in generate_scenario(IR_CSV, blocked_fraction=0).sites)
    with pytest.raises(ScenarioError, match="blocked_fraction"):
        generate_scenario(IR_CSV, blocked_fraction=1.5)
    with pytest.raises(ScenarioError, match="unknown techniques"):
        generate_scenario(IR_CSV, mix={"dns_lie": 1})
    with pytest.raises(ScenarioError, match="throttle"):
        generate_scenario(IR_CSV, mix={"throttle": 1})


def test_bad_test_lists_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        generate_scenario(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("address,category_code\nhttp://x.example/,NEWS\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match="no 'url' column"):
        generate_scenario(bad)
    bad.write_text("url,category_code\nftp://x.example/,NEWS\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"bad.csv:2: not an http\(s\) URL"):
        generate_scenario(bad)


def test_yaml_round_trip() -> None:
    sc = generate_scenario(IR_CSV, seed=4)
    again = parse_scenario(yaml.safe_load(scenario_to_yaml(sc)), "again")
    assert again == sc


async def test_generated_lab_starts_fast_and_censors() -> None:
    sc = generate_scenario(IR_CSV, seed=1)
    t0 = time.perf_counter()
    async with UserspaceLab(sc) as lab:
        up = time.perf_counter() - t0
        print(f"\nbench-like: generated lab ({len(sc.sites)} sites) up in {up:.3f} s")
        net = lab.network
        assert len(net.probe_view.routes) >= 2 * len(sc.sites)
        host, port = net.probe_view.resolver.rsplit(":", 1)
        hijacked = next(s for s in sc.sites if s.techniques() == {"dns_hijack"})
        clean = next(s for s in sc.sites if not s.censor)
        for site, want in ((hijacked, sc.blockpage_ip), (clean, clean.ip)):
            reply = await dns.asyncquery.udp(
                dns.message.make_query(site.domain, "A"), host, port=int(port), timeout=1
            )
            got = [r.address for rr in reply.answer for r in rr if rr.rdtype == dns.rdatatype.A]
            assert got == [want]
