"""Invariants of the verdict rule table."""

from __future__ import annotations

import re

from dideban.model.verdict import BLOCKING_TYPES
from dideban.pipeline.rules import (
    ANALYSIS_FAILED,
    FACT_GROUP,
    FACTS,
    RULES,
    decide,
    decision,
    rules_for,
)


def test_ids_are_unique_and_well_formed() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", i) for i in ids), ids
    assert all(r.version >= 1 for r in RULES)


def test_every_rule_is_documented() -> None:
    short = [r.id for r in RULES if len(r.description.split()) < 4]
    assert short == []


def test_every_test_ends_with_exactly_one_catch_all() -> None:
    for test in FACT_GROUP:
        rules = rules_for(test)
        assert rules, test
        assert rules[-1].when == (), f"{test}: last rule is not a catch-all"
        assert [r for r in rules if not r.when] == [rules[-1]], f"{test}: catch-all not last"


def test_every_outcome_is_valid() -> None:
    for r in RULES:
        o = r.outcome
        assert o.blocking_type is None or o.blocking_type in BLOCKING_TYPES, r.id
        assert not (o.anomaly and o.failure), r.id
        assert not (o.confirmed and not o.anomaly), r.id
        assert o.blocking_type is None or o.anomaly, r.id


def test_rules_only_name_facts_their_test_computes() -> None:
    for r in RULES:
        for test in r.tests:
            vocab = FACTS[FACT_GROUP[test]]
            assert set(r.when) <= vocab, (r.id, set(r.when) - vocab)


def test_every_test_has_a_rule_group() -> None:
    for test in FACT_GROUP:
        assert FACT_GROUP[test] in FACTS


def test_first_match_wins_and_catch_all_catches() -> None:
    assert (
        decide("web_connectivity", {"fp_http_confirmed", "http_failed"}).id == "wc.fp.http_failure"
    )
    assert decide("web_connectivity", {"fp_http_confirmed"}).id == "wc.fp.http"
    assert decide("web_connectivity", set()).id == "wc.catchall"
    assert decide("no_such_test", set()).id == "generic.unsupported"
    # A rule whose facts are not all present does not fire.
    assert decide("web_connectivity", {"dns_inconsistent"}).id != "wc.dns.inconsistent"


def test_the_analysis_failed_rule_is_in_no_tests_list() -> None:
    """`analyze` gives it itself; no fact of any test can make `decide` pick it."""
    assert ANALYSIS_FAILED.id == "pipeline.analysis_failed" and ANALYSIS_FAILED in RULES
    assert ANALYSIS_FAILED.outcome.failure and not ANALYSIS_FAILED.outcome.anomaly
    for test in FACT_GROUP:
        assert ANALYSIS_FAILED not in rules_for(test)
        assert decide(test, FACTS[FACT_GROUP[test]]).id != ANALYSIS_FAILED.id


def test_the_decision_the_analysis_reads_is_the_rule_decide_picks() -> None:
    """`decision` (what the analysis reads: id, anomaly, confirmed, failure, blocking type)
    is `decide`'s rule, for every test and every set of its facts up to three, and for each
    rule's own facts plus any one more."""
    import itertools

    for test, group in FACT_GROUP.items():
        vocabulary = sorted(FACTS[group])
        sets = [frozenset(c) for k in range(4) for c in itertools.combinations(vocabulary, k)]
        for r in rules_for(test):
            sets += [frozenset(r.when) | {f} for f in vocabulary]
        picked = set()
        for facts in sets:
            rule = decide(test, set(facts))
            out = rule.outcome
            expected = (rule.id, out.anomaly, out.confirmed, out.failure, out.blocking_type)
            assert decision(test, facts) == expected, (test, sorted(facts))
            picked.add(rule.id)
        assert picked == {r.id for r in rules_for(test)}, test  # every rule was decided
