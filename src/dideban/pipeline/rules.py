"""Verdict rules: versioned data with stable ids, evaluated in order, first match wins.

Each rule names the test(s) it applies to, the facts that must ALL hold (`when`; facts are
computed from the recorded observations and the control by `dideban.pipeline.analysis`, never
from the probe's own `blocking`/`accessible`), and the outcome. Every test's list ends with a
catch-all (`when=()`). A rule's id never changes meaning: change the rule, bump its version.
The store records the ids that decided each verdict and `RULES_VERSION`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from dideban.model.verdict import BLOCKING_TYPES


@dataclass(frozen=True, slots=True)
class Outcome:
    anomaly: bool = False
    confirmed: bool = False
    failure: bool = False
    blocking_type: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    version: int
    tests: tuple[str, ...]
    description: str
    when: tuple[str, ...]
    outcome: Outcome


OK = Outcome()
FAIL = Outcome(failure=True)


def _a(bt: str | None, confirmed: bool = False) -> Outcome:
    return Outcome(anomaly=True, confirmed=confirmed, blocking_type=bt)


WC = ("web_connectivity",)
TOR = ("tor",)
TORBOOT = ("vanilla_tor", "torsf")
IM = ("whatsapp", "telegram", "signal", "facebook_messenger")

# fmt: off
RULES: tuple[Rule, ...] = (
    # -- web_connectivity (the classic analysis, recomputed) --------------------------------
    Rule("wc.no_test_keys", 1, WC, "test_keys is null: nothing was measured", ("no_test_keys",), FAIL),
    Rule("wc.fp.dns", 1, WC, "A DNS answer matches a blocking fingerprint that confirms for this country (the cause, even when the block page it leads to matches too)", ("fp_dns_confirmed",), _a("dns", True)),
    Rule("wc.fp.http_failure", 1, WC, "A blocking fingerprint that confirms for this country matches a response, and the fetch then failed (e.g. an unusable redirect to a block page)", ("fp_http_confirmed", "http_failed"), _a("http-failure", True)),
    Rule("wc.fp.http", 1, WC, "An HTTP body or header matches a blocking fingerprint that confirms for this country", ("fp_http_confirmed",), _a("http-diff", True)),
    Rule("wc.dns.inconsistent", 1, WC, "DNS answers disagree with the control (bogon, NXDOMAIN on one side only, or addresses the control cannot vouch for) and the page was not fetched as the control saw it", ("dns_inconsistent", "not_http_accessible"), _a("dns")),
    Rule("wc.control.unavailable", 1, WC, "No usable control: the test helper failed or is missing", ("control_unavailable",), FAIL),
    Rule("wc.both_failed", 1, WC, "The probe and the control both failed to fetch the page: the site is down, not blocked", ("probe_http_unsuccessful", "control_http_failed"), OK),
    Rule("wc.tcp.blocked", 1, WC, "Every TCP connect of the probe failed while the control reached the site", ("tcp_all_failed",), _a("tcp_ip")),
    Rule("wc.tls.blocked", 1, WC, "The TLS handshakes of the probe failed while the control's succeeded", ("tls_failed",), _a("tls")),
    Rule("wc.http.failure", 1, WC, "The probe's HTTP request failed while the control's succeeded", ("http_failed",), _a("http-failure")),
    Rule("wc.http.diff", 1, WC, "The probe got a page that differs from the control's (status code, and body length, headers and title)", ("http_diff",), _a("http-diff")),
    Rule("wc.http.ok", 1, WC, "The probe got the page the control got", ("http_accessible",), OK),
    Rule("wc.catchall", 1, WC, "Nothing above applies: not enough data to decide", (), FAIL),
    # -- instant messaging -----------------------------------------------------------------
    Rule("im.no_test_keys", 1, IM, "test_keys is null: nothing was measured", ("no_test_keys",), FAIL),
    Rule("signal.untrusted_ca", 1, ("signal",), "TLS to Signal failed with ssl_unknown_authority: Signal's pinned CA expired (a known probe-side false positive)", ("tls_unknown_authority",), FAIL),
    Rule("signal.device_dns", 1, ("signal",), "android_dns_cache_no_data: the device's resolver failed, not evidence of blocking", ("android_dns_no_data",), FAIL),
    Rule("whatsapp.registration", 1, ("whatsapp",), "Requests to the WhatsApp registration server failed", ("registration_failed",), _a("http-failure")),
    Rule("im.dns", 1, IM, "A DNS lookup of the service failed or returned a bogon", ("dns_failed",), _a("dns")),
    Rule("im.tcp", 1, IM, "Every TCP connect to one of the service's endpoint groups failed", ("tcp_blocked",), _a("tcp_ip")),
    Rule("im.tls", 1, IM, "TLS handshakes to the service failed", ("tls_blocked",), _a("tls")),
    Rule("im.http", 1, IM, "HTTP requests to the service's API (not its web front end) failed", ("http_blocked",), _a("http-failure")),
    Rule("im.catchall", 1, IM, "The service's endpoints were reachable (web front ends are not scored: OONI fastpath ignores them as unreliable)", (), OK),
    # -- tor -------------------------------------------------------------------------------
    Rule("tor.malformed", 1, TOR, "targets is not a map of target results", ("targets_malformed",), FAIL),
    Rule("tor.blocked", 1, TOR, "More than half of the Tor targets (OR ports, directory ports, bridges) failed", ("most_targets_failed",), _a("tcp_ip")),
    Rule("tor.catchall", 1, TOR, "Most Tor targets were reachable", (), OK),
    Rule("torboot.no_progress", 1, TORBOOT, "Tor never started (progress 0, v0.4+): the probe's environment failed, no evidence", ("bootstrap_never_started",), FAIL),
    Rule("torboot.failed", 1, TORBOOT, "Tor failed to bootstrap", ("bootstrap_failed",), _a(None)),
    Rule("torboot.catchall", 1, TORBOOT, "Tor bootstrapped to 100%: no sign of blocking", (), OK),
    # -- middlebox tests -------------------------------------------------------------------
    Rule("hhfm.tampering", 1, ("http_header_field_manipulation",), "The echo server saw the request headers changed on the way", ("tampering",), _a(None)),
    Rule("hhfm.no_response", 1, ("http_header_field_manipulation",), "No request got a response from the echo server", ("all_requests_failed",), FAIL),
    Rule("hhfm.catchall", 1, ("http_header_field_manipulation",), "The request headers arrived at the echo server unchanged", (), OK),
    Rule("hirl.tampering", 1, ("http_invalid_request_line",), "The invalid request lines did not come back unchanged: a middlebox rewrote them", ("tampering",), _a(None)),
    Rule("hirl.catchall", 1, ("http_invalid_request_line",), "The invalid request lines came back unchanged", (), OK),
    # -- dnscheck, stunreachability --------------------------------------------------------
    Rule("dnscheck.bootstrap", 1, ("dnscheck",), "The resolver's own address could not be resolved", ("bootstrap_failed",), FAIL),
    Rule("dnscheck.all_failed", 1, ("dnscheck",), "Every lookup through the resolver failed", ("lookups_all_failed",), _a("dns")),
    Rule("dnscheck.catchall", 1, ("dnscheck",), "The resolver answered at least one lookup", (), OK),
    Rule("stun.dns", 1, ("stunreachability",), "Resolving the STUN server failed", ("dns_failed",), _a("dns")),
    Rule("stun.failed", 1, ("stunreachability",), "The STUN exchange failed", ("failed",), _a("tcp_ip")),
    Rule("stun.catchall", 1, ("stunreachability",), "The STUN server answered the binding request", (), OK),
    # -- everything else -------------------------------------------------------------------
    Rule("generic.unsupported", 1, ("*",), "A test this pipeline does not score: no verdict", (), FAIL),
    # -- any test (in no test's list: `analysis.analyze` gives it itself) -------------------
    Rule("pipeline.analysis_failed", 1, (), "The analysis of this measurement failed (a bug in the pipeline, reported with its reason): no verdict until it is reprocessed", (), FAIL),
)
# fmt: on

# Facts each test's analysis computes (rules may only name these).
FACTS: dict[str, frozenset[str]] = {
    "web_connectivity": frozenset(
        {
            "no_test_keys",
            "fp_http_confirmed",
            "fp_dns_confirmed",
            "dns_inconsistent",
            "not_http_accessible",
            "control_unavailable",
            "probe_http_unsuccessful",
            "control_http_failed",
            "tcp_all_failed",
            "tls_failed",
            "http_failed",
            "http_diff",
            "http_accessible",
        }
    ),
    "im": frozenset(
        {
            "no_test_keys",
            "tls_unknown_authority",
            "android_dns_no_data",
            "registration_failed",
            "dns_failed",
            "tcp_blocked",
            "tls_blocked",
            "http_blocked",
        }
    ),
    "tor": frozenset({"targets_malformed", "most_targets_failed"}),
    "torboot": frozenset({"bootstrap_never_started", "bootstrap_failed"}),
    "hhfm": frozenset({"tampering", "all_requests_failed"}),
    "hirl": frozenset({"tampering"}),
    "dnscheck": frozenset({"bootstrap_failed", "lookups_all_failed"}),
    "stun": frozenset({"dns_failed", "failed"}),
    "generic": frozenset(),
}

RULES_VERSION = "r1-" + str(sum(r.version for r in RULES))

# The rule of a measurement whose analysis failed (see `analysis.analyze`).
ANALYSIS_FAILED = next(r for r in RULES if r.id == "pipeline.analysis_failed")

VALID_BLOCKING_TYPES = (None, *BLOCKING_TYPES)


def rules_for(test_name: str) -> list[Rule]:
    own = [r for r in RULES if test_name in r.tests]
    return own if own else [r for r in RULES if "*" in r.tests]


@functools.lru_cache(maxsize=256)
def ordered_rules(test_name: str) -> tuple[tuple[frozenset[str], Rule], ...]:
    """`rules_for(test_name)` as (facts that must all hold, rule) pairs: deciding is one
    subset test per rule."""
    return tuple((frozenset(r.when), r) for r in rules_for(test_name))


def decide(test_name: str, facts: set[str] | frozenset[str]) -> Rule:
    """The first rule for this test whose facts all hold (the catch-all always does)."""
    return _decide(test_name, frozenset(facts))


# A test's facts come from a small vocabulary (`FACTS`), so few sets occur: the pipeline,
# deciding once per measurement, mostly finds its decision taken already.
@functools.lru_cache(maxsize=4096)
def _decide(test_name: str, facts: frozenset[str]) -> Rule:
    for when, rule in ordered_rules(test_name):
        if when <= facts:
            return rule
    raise AssertionError(f"no catch-all rule for {test_name}")  # invariant-tested


# What the analysis reads of a decision: (rule id, anomaly, confirmed, failure, blocking type).
Decision = tuple[str, bool, bool, bool, str | None]


@functools.lru_cache(maxsize=4096)
def decision(test_name: str, facts: frozenset[str]) -> Decision:
    """`decide(test_name, facts)` as the flat tuple the analysis reads, taken once per set
    of facts: per measurement, one call of the cache's C wrapper, where `decide` and the
    rule's attributes cost a Python call and seven attribute reads."""
    rule = _decide(test_name, facts)
    out = rule.outcome
    return rule.id, out.anomaly, out.confirmed, out.failure, out.blocking_type


# Which fact vocabulary each test's rules draw from.
FACT_GROUP: dict[str, str] = {
    "web_connectivity": "web_connectivity",
    "whatsapp": "im",
    "telegram": "im",
    "signal": "im",
    "facebook_messenger": "im",
    "tor": "tor",
    "vanilla_tor": "torboot",
    "torsf": "torboot",
    "http_header_field_manipulation": "hhfm",
    "http_invalid_request_line": "hirl",
    "dnscheck": "dnscheck",
    "stunreachability": "stun",
    "*": "generic",
}
