"""The analysis's shortcuts give exactly what the plain definitions give: memoized rule
decisions, the caches of URL parts, start times and addresses, the header comparison of
`_same_page` and the one-pass DNS facts of the instant-messaging tests, each against the
straightforward code it replaced."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dideban.model.verdict import Observation, Verdict
from dideban.pipeline import analysis
from dideban.pipeline._native import ooni_time
from dideban.pipeline.analysis import (
    _COMMON_HEADERS,
    _addresses,
    _any_bogon,
    _host_scheme,
    _im,
    _is_ip,
    _parse_time,
    _same_page,
    _time,
    is_bogon,
    layer_scores,
)
from dideban.pipeline.observations import Extracted, HttpExchange
from dideban.pipeline.rules import FACT_GROUP, FACTS, Rule, decide, ordered_rules, rules_for


def first_match(test_name: str, facts: set[str]) -> Rule:
    return next(r for r in rules_for(test_name) if set(r.when) <= facts)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_decide_is_the_first_matching_rule_also_when_remembered(data: st.DataObject) -> None:
    test = data.draw(st.sampled_from(sorted(FACT_GROUP)))
    vocab = sorted(FACTS[FACT_GROUP[test]] | {"no_test_keys"})
    facts = data.draw(st.sets(st.sampled_from(vocab)))
    expected = first_match(test, facts)
    assert decide(test, facts) is expected
    assert decide(test, set(facts)) is expected  # the remembered decision


def test_ordered_rules_are_rules_for_in_order() -> None:
    for test in [*FACT_GROUP, "no_such_test"]:
        pairs = ordered_rules(test)
        assert [r for _, r in pairs] == rules_for(test)
        assert all(when == frozenset(r.when) for when, r in pairs)


def test_verdict_fields_are_in_the_order_analyze_passes_them() -> None:
    assert tuple(f.name for f in dataclasses.fields(Verdict)) == analysis._VERDICT_FIELDS


ADDRESS_LIKE = st.one_of(
    st.sampled_from(
        [
            "1.2.3.4",
            "10.0.0.1",
            "127.0.0.1",
            "198.18.0.7",
            "0.0.0.0",
            "::1",
            "2001:db8::1",
            "fe80::1%eth0",
            "01.2.3.4",
            "256.1.1.1",
            "example.com",
            "",
            " 1.2.3.4",
        ]
    ),
    st.integers(min_value=-1, max_value=2**33),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.text(alphabet="0123456789.:abcdef", max_size=16),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ADDRESS_LIKE, max_size=6))
def test_addresses_and_bogons_like_the_plain_definitions(values: list[Any]) -> None:
    for _ in range(2):  # first computed, then remembered
        # Addresses are strings: a number that `ipaddress` would take (0 is 0.0.0.0) is not.
        assert _addresses(values) == {a for a in values if isinstance(a, str) and _is_ip(a)}
    strings = {v for v in values if isinstance(v, str)}
    assert _any_bogon(strings) == any(is_bogon(a) for a in strings)


def test_is_ip_is_ipaddress() -> None:
    for text in ["1.2.3.4", "::1", "1.2.3", "x"]:
        try:
            ipaddress.ip_address(text)
            expected = True
        except ValueError:
            expected = False
        assert _is_ip(text) is expected


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.sampled_from(
            [
                "https://Example.COM:443/a?b",
                "http://[::1]:80/",
                "http://[::1",
                "example.com",
                "HTTPS://x.org",
                "http://user@host/",
                "",
                "ftp://h",
                "http://h\nx/",
            ]
        ),
        st.text(alphabet="htps:/[]@.aX1%", max_size=20),
    )
)
def test_host_scheme_is_urlsplit(url: str) -> None:
    try:
        parts = urlsplit(url)
    except ValueError:
        # A URL urlsplit refuses (e.g. "http://[") has no host: the analysis goes on.
        for _ in range(2):
            assert _host_scheme(url) == (None, "")
        return
    for _ in range(2):
        assert _host_scheme(url) == (parts.hostname, parts.scheme)


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-02 03:04:05",
        "2024-01-02T03:04:05Z",
        "2024-01-02T03:04:05+03:30",
        "2024-13-01 00:00:00",
        "garbage",
        "",
    ],
)
def test_start_time_remembered_as_parsed(text: str) -> None:
    expected = _parse_time(text)
    assert _time({"measurement_start_time": text}) == expected
    assert _time({"measurement_start_time": text}) == expected  # remembered


def test_start_time_of_other_types_is_the_epoch() -> None:
    assert _time({}) == analysis.EPOCH
    assert _time({"measurement_start_time": 5}) == analysis.EPOCH


# -- _same_page against the comparison as first written ----------------------------------------


def uncommon(headers: list[tuple[str, str]] | dict[str, Any]) -> set[str]:
    names = headers.keys() if isinstance(headers, dict) else [k for k, _ in headers]
    return {n.lower() for n in names if isinstance(n, str)} - _COMMON_HEADERS


def same_page_reference(final: HttpExchange, ctrl: dict[str, Any]) -> bool:
    c_code = ctrl.get("status_code")
    if not isinstance(c_code, int) or final.status_code != c_code:
        return False
    c_len = ctrl.get("body_length")
    body_match = False
    if isinstance(c_len, int) and c_len > 0 and final.body_length is not None:
        lo, hi = sorted((c_len, final.body_length))
        body_match = hi > 0 and lo / hi > 0.7
    h = ctrl.get("headers")
    c_headers: dict[str, Any] = h if isinstance(h, dict) else {}
    p_unc, c_unc = uncommon(final.headers), uncommon(c_headers)
    headers_match = bool(p_unc & c_unc) or (not p_unc and not c_unc and bool(c_headers))
    c_title = ctrl.get("title")
    title_match = False
    if isinstance(c_title, str) and c_title and final.title:
        words = [w for w in c_title.split() if len(w) >= 5]
        title_match = bool(words) and words[0] in final.title.split()
    return body_match or headers_match or title_match


HEADER_NAMES = st.sampled_from(["Server", "date", "X-Cache", "x-cache", "Via", "X-Block", "ETag"])
TITLES = st.one_of(
    st.none(), st.sampled_from(["", "Welcome to nginx", "Example Domain", "Blocked page here"])
)
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 5000), st.text(max_size=3))


@settings(max_examples=500, deadline=None)
@given(
    code=st.sampled_from([200, 302, 404]),
    p_len=st.one_of(st.none(), st.integers(0, 5000)),
    p_headers=st.lists(st.tuples(HEADER_NAMES, st.just("v")), max_size=4),
    p_title=TITLES,
    c_code=st.one_of(st.sampled_from([200, 302, 404]), VALUES),
    c_len=VALUES,
    c_headers=st.one_of(VALUES, st.dictionaries(HEADER_NAMES, st.just("v"), max_size=4)),
    c_title=st.one_of(TITLES, VALUES),
)
def test_same_page_like_the_classic_comparison(
    code: int,
    p_len: int | None,
    p_headers: list[tuple[str, str]],
    p_title: str | None,
    c_code: Any,
    c_len: Any,
    c_headers: Any,
    c_title: Any,
) -> None:
    final = HttpExchange("http://x/", None, code, p_headers, p_title, p_len)
    ctrl = {"status_code": c_code, "body_length": c_len, "headers": c_headers, "title": c_title}
    assert _same_page(final, ctrl) == same_page_reference(final, ctrl)


# -- the instant-messaging facts against the passes as first written ---------------------------


def im_reference(name: str, ex: Extracted) -> tuple[set[str], tuple[float, float, float]]:
    facts: set[str] = set()
    scores = analysis.NOT_REACHED
    if ex.dns:
        bad = [o for o in ex.dns if o.failure]
        hosts = {o.hostname for o in ex.dns}
        ok_hosts = {o.hostname for o in ex.dns if o.ip}
        scores = analysis.OK3 if not bad else analysis.blocked(0.9)
        if hosts - ok_hosts:
            facts.add("dns_failed")
    tcp = ex.tcp
    if tcp:
        failed = [o for o in tcp if o.failure]
        by_port: dict[int | None, list[Observation]] = {}
        for o in tcp:
            by_port.setdefault(o.port, []).append(o)
        if failed and (
            len(failed) == len(tcp)
            or (name == "telegram" and any(all(x.failure for x in g) for g in by_port.values()))
        ):
            facts.add("tcp_blocked")
    return facts, scores


FAILURES = st.sampled_from([None, None, "", "dns_nxdomain_error", "generic_timeout_error"])


@st.composite
def observations(draw: st.DrawFn, kind: str) -> Observation:
    return Observation(
        "u",
        0,
        kind,  # type: ignore[arg-type]
        hostname=draw(st.sampled_from([None, "a.example", "b.example"])),
        ip=draw(st.sampled_from([None, "", "1.2.3.4", "127.0.0.1"])),
        port=draw(st.sampled_from([None, 80, 443])),
        failure=draw(FAILURES),
    )


@settings(max_examples=400, deadline=None)
@given(
    name=st.sampled_from(["whatsapp", "telegram", "signal", "facebook_messenger"]),
    dns=st.lists(observations("dns"), max_size=6),
    tcp=st.lists(observations("tcp"), max_size=6),
)
def test_im_dns_and_tcp_facts_like_the_plain_passes(
    name: str, dns: list[Observation], tcp: list[Observation]
) -> None:
    ex = Extracted(dns=dns, tcp=tcp)
    facts, s_dns, *_ = _im(name, {}, ex)
    expected_facts, expected_dns = im_reference(name, ex)
    assert facts & {"dns_failed", "tcp_blocked"} == expected_facts
    assert s_dns == expected_dns


def test_layer_scores_unchanged() -> None:
    # The precomputed triples are the ones `blocked` makes.
    assert analysis.BLOCKED_90 == analysis.blocked(0.9) == (0.9, 0.1, 0.0)
    assert analysis.blocked(0.6) == analysis.BLOCKED_60
    assert layer_scores("dns", "dns_nxdomain_error", None) == analysis.BLOCKED_50


@settings(max_examples=600, deadline=None)
@given(
    st.integers(0, 10000),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 25),
    st.integers(0, 61),
    st.integers(0, 61),
    st.sampled_from([" ", "T", "_"]),
)
def test_ooni_times_parse_as_fromisoformat(
    y: int, mo: int, d: int, h: int, mi: int, s: int, sep: str
) -> None:
    """OONI's own format is parsed in C (`_native.ooni_time`), which takes only texts that
    name a moment, as fromisoformat does (leap years, month lengths, no hour 24); the rest
    goes to the full parse. Either way the result is fromisoformat's, else the epoch."""
    text = f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}"
    try:
        expected = dt.datetime.fromisoformat(text)
    except ValueError:
        expected = analysis.EPOCH
    assert _parse_time(text) == expected
    fast = ooni_time(text)
    assert fast is None or (sep == " " and fast == expected and fast.tzinfo is None)
    if sep == " " and expected != analysis.EPOCH:
        assert fast == expected  # OONI's format, a real moment: taken by the fast path


@pytest.mark.parametrize(
    "text", ["2024-01-02 03:04:0٥", "２024-01-02 03:04:05", "2024-01-02 03:04:05 "]
)
def test_ooni_time_leaves_other_texts_to_the_full_parse(text: str) -> None:
    assert ooni_time(text) is None


@pytest.mark.parametrize(
    ("text", "taken"),
    [
        ("2024-02-29 00:00:00", True),
        ("2000-02-29 12:00:00", True),
        ("0001-01-01 00:00:00", True),
        ("9999-12-31 23:59:59", True),
        ("2023-02-29 00:00:00", False),
        ("1900-02-29 00:00:00", False),
        ("2024-04-31 00:00:00", False),
        ("2024-01-01 24:00:00", False),
        ("0000-01-01 00:00:00", False),
    ],
)
def test_ooni_time_at_the_edges_of_the_calendar(text: str, taken: bool) -> None:
    fast = ooni_time(text)
    assert (fast is not None) == taken
    if taken:
        assert fast == dt.datetime.fromisoformat(text) == _parse_time(text)
    else:
        assert _parse_time(text) == analysis.EPOCH


def test_remembered_results_are_computed_once_and_start_again_when_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`_remember` (behind is_bogon, _host_scheme...) computes each key once, holds at most
    _CACHE_MAX results and, full, starts again (the results stay right)."""
    monkeypatch.setattr(analysis, "_CACHE_MAX", 3)
    table: dict[Any, Any] = {}
    calls: list[int] = []

    def double(x: int) -> int:
        calls.append(x)
        return x * 2

    got = [analysis._remember(table, k, double) for k in (1, 2, 1, 3, 4, 4, 1)]
    assert got == [2, 4, 2, 6, 8, 8, 2]
    assert calls == [1, 2, 3, 4, 1]  # 1 again after the table started again at 4
    assert len(table) <= 3
    assert analysis._remember(table, None, lambda _: None) is None  # None is a result too
    assert analysis._remember(table, None, lambda _: 1 / 0) is None  # ... remembered


def test_bogons_and_urls_are_remembered_as_computed() -> None:
    for ip in ("10.1.2.3", "198.18.0.7", "8.8.8.8", "::1", "not an ip"):
        assert is_bogon(ip) == analysis._bogon(ip) and analysis._BOGONS[ip] == is_bogon(ip)
    assert _host_scheme("https://a.example/x") == ("a.example", "https")
    assert analysis._URL_PARTS["https://a.example/x"] == ("a.example", "https")
