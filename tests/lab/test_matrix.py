"""The lab matrix: web_connectivity over every site of `iran.yaml` gets the site's `expect`."""

from __future__ import annotations

from typing import Any

import pytest
from probe_lab_run import iran_run

from dideban.lab.scenario import Site, load_scenario

SCENARIO = load_scenario("iran")
SITES = [s for s in SCENARIO.sites if s.expect is not None]


def _verdict(site: Site) -> tuple[Any, Any]:
    tk = iran_run().by_input()[site.url]["test_keys"]
    return tk["blocking"], tk["accessible"]


def _label(site: Site) -> str:
    what = ",".join(sorted(site.techniques())) or site.server
    return f"{site.domain}[{what}]"


def test_every_site_was_measured_once() -> None:
    run = iran_run()
    assert sorted(m["input"] for m in run.measurements) == sorted(s.url for s in SCENARIO.sites)


@pytest.mark.parametrize("site", SITES, ids=_label)
def test_site_verdict_matches_expectation(site: Site) -> None:
    assert site.expect is not None
    tk = iran_run().by_input()[site.url]["test_keys"]
    got = (tk["blocking"], tk["accessible"])
    assert got == (site.expect.blocking, site.expect.accessible), (
        f"{site.url}: rule {tk.get('x_analysis_rule')}, dns {tk.get('dns_consistency')}, "
        f"dns failure {tk.get('dns_experiment_failure')}, http failure "
        f"{tk.get('http_experiment_failure')}, control failure {tk.get('control_failure')}"
    )


def test_no_false_positives_on_working_and_down_sites() -> None:
    # Working sites (no censor: served, throttled is censorship-free per OONI) and sites that
    # are down for everyone must never be reported as blocked.
    negatives = [
        s
        for s in SCENARIO.sites
        if not s.censor or s.techniques() == {"throttle"} or s.server != "ok"
    ]
    assert len(negatives) >= 20
    blocked = {s.url: _verdict(s) for s in negatives if _verdict(s)[0] not in (False,)}
    assert blocked == {}
    working = [s for s in negatives if s.server == "ok"]
    assert all(_verdict(s) == (False, True) for s in working)
    down = [s for s in negatives if s.server != "ok"]
    assert down and all(_verdict(s) == (False, False) for s in down)


def test_every_technique_is_detected_as_blocking() -> None:
    censored = [s for s in SCENARIO.sites if s.censor and s.techniques() != {"throttle"}]
    techniques = set().union(*(s.techniques() for s in censored))
    assert {"dns_hijack", "tcp_reset", "tls_reset", "http_blockpage"} <= techniques
    assert all(isinstance(_verdict(s)[0], str) and _verdict(s)[1] is False for s in censored)


def test_injected_dns_replies_are_all_recorded() -> None:
    # The forged reply wins the race; the true one arrives later and is kept as a duplicate.
    injected = [s for s in SCENARIO.sites if "dns_inject" in s.techniques()]
    assert injected
    for site in injected:
        tk = iran_run().by_input()[site.url]["test_keys"]
        assert tk["x_dns_duplicate_responses"], site.url
        udp_a = [q for q in tk["queries"] if q["engine"] == "udp" and q["query_type"] == "A"]
        answers = {a.get("ipv4") for q in udp_a for a in q["answers"] or []}
        assert site.ip in answers and len(answers) >= 2


def test_sni_blocking_is_recorded_at_the_tls_step() -> None:
    for site in SCENARIO.sites:
        if "tls_reset" in site.techniques() or "tls_timeout" in site.techniques():
            tk = iran_run().by_input()[site.url]["test_keys"]
            failures = {h["failure"] for h in tk["tls_handshakes"]}
            want = (
                "connection_reset" if "tls_reset" in site.techniques() else "generic_timeout_error"
            )
            assert want in failures, (site.url, failures)
            assert all(h["server_name"] == site.domain for h in tk["tls_handshakes"])
            assert all(t["status"]["success"] for t in tk["tcp_connect"])
