"""The `iran` scenario's content and the scenario parser's errors."""

from __future__ import annotations

import copy
import csv
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from dideban.lab.generate import expectation_for
from dideban.lab.scenario import (
    SCENARIO_DIR,
    SERVER_BEHAVIOURS,
    TECHNIQUES,
    ScenarioError,
    load_scenario,
    parse_scenario,
)
from dideban.model.labnet import is_lab_address

IRAN = load_scenario("iran")
IR_CSV = Path(__file__).resolve().parents[3] / "src" / "dideban" / "data" / "test-lists" / "ir.csv"


def test_iran_probe_network_and_profiles() -> None:
    assert (IRAN.probe_cc, IRAN.probe_asn) == ("IR", "AS197207")
    assert IRAN.probe_network_name == "Mobile Communication Company of Iran PLC"
    assert IRAN.probe_public_ip.startswith("203.0.113.")
    profiles = {p.name: (p.asn, p.tls_block) for p in IRAN.profiles}
    assert profiles == {"MCI-like": ("AS197207", "reset"), "TCI-like": ("AS58224", "drop")}
    assert IRAN.blockpage_ip == "10.10.34.35"
    assert '<iframe src="http://10.10.34.34/?type=Invalid Site&policy=MainPolicy' in (
        IRAN.blockpage_html
    )
    assert "peyvandha.ir" in IRAN.blockpage_html


def test_iran_has_every_technique_and_negative_control() -> None:
    used = set().union(*(s.techniques() for s in IRAN.sites))
    assert used == set(TECHNIQUES)
    assert {s.server for s in IRAN.sites} == set(SERVER_BEHAVIOURS)
    assert any(s.echo_client for s in IRAN.sites)
    unblocked = [s for s in IRAN.sites if not s.censor and s.server == "ok"]
    assert len(unblocked) >= 20


def test_iran_documented_practice() -> None:
    def tech(domain: str) -> set[str]:
        return IRAN.site(domain).techniques()

    for d in ("www.facebook.com", "twitter.com", "www.youtube.com"):
        assert [c.params for c in IRAN.site(d).censor] == [{"answer": "10.10.34.35"}]
        assert tech(d) == {"dns_hijack"}
    assert tech("www.instagram.com") == tech("www.whatsapp.com") == {"tls_reset"}
    assert tech("telegram.org") == {"tcp_reset"}
    # The blockpage sites are plain-HTTP news sites from the Iranian test list.
    listed = set()
    with IR_CSV.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            listed.add((urlsplit(row["url"]).hostname or "").removeprefix("www."))
    blockpaged = [s for s in IRAN.sites if "http_blockpage" in s.techniques()]
    assert len(blockpaged) >= 3
    for s in blockpaged:
        assert s.scheme == "http" and s.category_code == "NEWS"
        assert s.domain.removeprefix("www.") in listed


def test_iran_expectations_follow_the_classic_analysis_rules() -> None:
    for s in IRAN.sites:
        assert s.expect is not None, s.url
        assert s.expect == expectation_for(s), s.url
        assert is_lab_address(s.ip)
    throttled = [s for s in IRAN.sites if "throttle" in s.techniques()]
    assert throttled and all(
        (s.expect.blocking, s.expect.accessible) == (False, True) for s in throttled if s.expect
    )


def _raw() -> dict[str, Any]:
    data = yaml.safe_load((SCENARIO_DIR / "iran.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return copy.deepcopy(data)


@pytest.mark.parametrize("ip", ["10.0.0.1", "8.8.8.8", "192.0.2.5", "127.0.0.1", "not-an-ip"])
def test_site_ip_outside_lab_ranges(ip: str) -> None:
    data = _raw()
    data["sites"][3]["ip"] = ip
    with pytest.raises(ScenarioError, match=r"iran\.sites\[3\]: ip must be in 198\.18\.0\.0/15"):
        parse_scenario(data, "iran")


def test_unknown_technique() -> None:
    data = _raw()
    data["sites"][0]["censor"] = [{"technique": "dns_lie"}]
    with pytest.raises(ScenarioError, match=r"iran\.sites\[0\]\.censor\[0\]: unknown technique"):
        parse_scenario(data, "iran")
    data["sites"][0]["censor"] = [{"technique": "dns_hijack", "answer": "nowhere"}]
    with pytest.raises(ScenarioError, match="answer is not an IP address"):
        parse_scenario(data, "iran")
    data["sites"][0]["censor"] = [{"technique": "tcp_reset", "delay_ms": 3}]
    with pytest.raises(ScenarioError, match="unknown parameters"):
        parse_scenario(data, "iran")


def test_duplicate_domain() -> None:
    data = _raw()
    data["sites"].append(dict(data["sites"][0], ip="198.18.200.1"))
    with pytest.raises(ScenarioError, match=r"duplicate site domain www\.facebook\.com"):
        parse_scenario(data, "iran")


def test_other_errors_say_where_and_why(tmp_path: Path) -> None:
    data = _raw()
    data["sites"][1]["server"] = "flaky"
    with pytest.raises(ScenarioError, match=r"sites\[1\]: server must be one of"):
        parse_scenario(data, "iran")
    data = _raw()
    data["probe"]["public_ip"] = "192.168.1.2"
    with pytest.raises(ScenarioError, match="public_ip must be a lab"):
        parse_scenario(data, "iran")
    with pytest.raises(ScenarioError, match=r"no scenario 'atlantis'; built-in: \['iran'"):
        load_scenario("atlantis")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sites: [\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(str(bad))
