"""The pipeline's fast paths give exactly what the plain definitions give: the compiled body
scan (one literal search, regexps run only where the texts they need occur) against each
fingerprint's own `matches`, over the default set and generated bodies."""

from __future__ import annotations

import ipaddress
import json
import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dideban.pipeline.analysis import _is_ip, is_bogon
from dideban.pipeline.fingerprints import (
    Fingerprint,
    FingerprintDB,
    _needed_literals,
    default_db,
)
from dideban.pipeline.observations import title_of
from dideban.pipeline.readers import ReadError, iter_lines, measurement_of


def fp(name: str, ptype: str, pattern: str) -> Fingerprint:
    return Fingerprint(name, "nat", "body", ptype, pattern, frozenset())


SMALL = FingerprintDB(
    [
        fp("full", "full", "ab"),
        fp("prefix", "prefix", "ab"),
        fp("contains", "contains", "b"),
        fp("contains2", "contains", "abc"),
        fp("re.lit", "regexp", r"ab+c"),
        fp("re.nolit", "regexp", r"[xy]z"),
        fp("re.icase", "regexp", r"(?i)QQ"),
        fp("re.alt", "regexp", r"a|zz"),
        # Needs "ab" and "zqzq" (in that order on one line, which only the regexp checks).
        fp("re.two", "regexp", r"ab.*zqzq"),
        fp("re.inner", "regexp", r"[xy]+qqzz"),
    ]
)


def naive(db: FingerprintDB, body: str) -> set[str]:
    return {f.name for f in db.fingerprints if f.location == "body" and f.matches(body)}


def test_needed_literals_of_regexps() -> None:
    # The literal prefix, of any length.
    assert _needed_literals(r"ab+c") == ["a"]
    assert _needed_literals(r"[xy]z") == []
    assert _needed_literals(r"(?i)QQ") == []  # case-insensitive: no literal gate
    assert _needed_literals(r"a|zz") == []
    assert _needed_literals(r"U\.S\..*Command") == ["U.S.", "Command"]
    assert _needed_literals(r"<meta name=.*twitter:card") == ["<meta name=", "twitter:card"]
    # Runs after the prefix count from 4 characters; optional ones are not literals.
    assert _needed_literals(r"ab+c.*xyz.*wxyz") == ["a", "wxyz"]
    assert _needed_literals(r"abc?defg") == ["ab", "defg"]
    assert _needed_literals(r"[xy]zzzz") == ["zzzz"]
    assert _needed_literals(r"(?i)QQQQ") == []
    assert _needed_literals(r"abcd|wxyz") == []
    assert _needed_literals(r"ab(?i:cdef)ghij") == ["ab", "ghij"]


def test_regexp_runs_only_with_all_it_needs() -> None:
    db = FingerprintDB([fp("two", "regexp", r"<meta name=.*twitter:card")])
    calls: list[str] = []

    class Spy:
        def __init__(self, rx: object) -> None:
            self.rx = rx

        def search(self, text: str) -> object:
            calls.append(text)
            return self.rx.search(text)  # type: ignore[attr-defined]

    db._regexp_compiled = [Spy(rx) for rx in db._regexp_compiled]  # type: ignore[misc]
    assert db.match_body('<meta name="x">' * 50) == []
    assert calls == []  # "twitter:card" is nowhere: the regexp never ran
    assert db.match_body("twitter:card <meta name=") == []  # both, wrong order
    assert len(calls) == 1
    assert [f.name for f in db.match_body(b'<meta name="twitter:card">')] == ["two"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcxyzqQé\n", max_size=16))
def test_small_set_matches_like_each_fingerprint(body: str) -> None:
    assert {f.name for f in SMALL.match_body(body)} == naive(SMALL, body)
    # The page as its UTF-8 (as the pruned decode gives it) matches the same, in order.
    assert SMALL.match_body(body.encode()) == SMALL.match_body(body)


def test_default_set_matches_like_each_fingerprint_on_blockpage_mixtures() -> None:
    db = default_db()
    body_fps = [f for f in db.fingerprints if f.location == "body"]
    literals = [f.pattern for f in body_fps if f.pattern_type != "regexp"]
    extra = ["URL x Spider Gate", "U.S. Army Command", "\ufffdab\ufffd", "<meta name=twitter:card"]
    rnd = random.Random(4)
    confirmed = 0
    for _ in range(400):
        parts = rnd.sample(literals, rnd.randint(0, 3)) + rnd.sample(extra, rnd.randint(0, 1))
        rnd.shuffle(parts)
        body = rnd.choice(["", " ", "<html>é"]).join(parts)
        got = [f.name for f in db.match_body(body)]
        assert len(got) == len(set(got))
        assert set(got) == naive(db, body)
        assert [f.name for f in db.match_body(body.encode())] == got
        confirmed += bool(got)
    assert confirmed > 300  # the mixtures do contain blockpages


def test_match_order_is_by_end_then_longest() -> None:
    # "abc" ends after "ab" (full/prefix need start 0 and, for full, the whole body).
    assert [f.name for f in SMALL.match_body("abc")] == [
        "prefix",
        "contains",
        "contains2",
        "re.lit",
        "re.alt",
    ]


def _plain_is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="0123456789.:abf٣", max_size=16),
        st.lists(st.integers(0, 300).map(str), min_size=3, max_size=5).map(".".join),
        st.ip_addresses().map(str),
    )
)
def test_is_ip_fast_path_agrees_with_ipaddress(text: str) -> None:
    assert _is_ip(text) == _plain_is_ip(text)


@pytest.mark.parametrize(
    ("ip", "bogon"),
    [
        ("10.10.34.35", True),
        ("127.0.0.1", True),
        ("::1", True),
        ("fe80::1", True),
        ("198.18.0.7", False),  # the lab's "Internet"
        ("8.8.8.8", False),
        ("not an ip", False),
    ],
)
def test_is_bogon_cached_answers_equal_fresh_ones(ip: str, bogon: bool) -> None:
    assert is_bogon(ip) is bogon
    assert is_bogon(ip) is bogon  # second call: from the cache


def test_default_headers_match_like_each_fingerprint_in_file_order() -> None:
    db = default_db()
    rnd = random.Random(5)
    by_name: dict[str, list[Fingerprint]] = {}
    for f in db.fingerprints:
        if f.location.startswith("header."):
            by_name.setdefault(f.location[7:], []).append(f)
    hits = 0
    for name, fps in by_name.items():
        for _ in range(150):
            picks = rnd.sample(fps, min(len(fps), rnd.randint(1, 2)))
            value = rnd.choice(["", "http://x/", "é"]).join(p.pattern for p in picks)
            # (A prefix not at the start; a lone surrogate, as a \ud800 escape gives.)
            value = rnd.choice(["", "", "x", "\ud800"]) + value + rnd.choice(["", "?q=1"])
            want = [f for f in fps if f.matches(value)]
            assert db.match_header(name.title(), value) == want
            hits += bool(want)
    assert hits > 150


def _reference_lines(data: bytes, path: str, first_line: int) -> list[object]:
    """The plain reading of JSONL: split, skip blank lines, orjson then json."""
    out: list[object] = []
    for n, raw in enumerate(data.split(b"\n"), start=first_line):
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            try:
                obj = json.loads(raw)
            except ValueError as exc:
                out.append(ReadError(path, n, f"invalid JSON: {exc}"))
                continue
        out.append(measurement_of(obj, path, n, None))
    return out


LINE = st.sampled_from(
    [
        b"",
        b" ",
        b"\r",
        b'{"test_name": "x", "measurement_uid": "u1"}',
        b'{"test_name": "x", "test_keys": {"v": NaN}}\r',
        b'{"test_keys": {"control": {}}}',
        b"[1, 2]",
        b"{not json",
        b'"\xff"',
        b'{"test_name": "\xc3\xa9"}',
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, max_size=8), st.booleans(), st.integers(1, 5))
def test_iter_lines_reads_like_split_lines(lines: list[bytes], final_nl: bool, first: int) -> None:
    data = b"\n".join(lines) + (b"\n" if final_nl else b"")
    got = list(iter_lines(data, "f.jsonl", first_line=first))
    assert got == _reference_lines(data, "f.jsonl", first)


_TITLE_PARTS = [
    "<title>", "<TITLE lang=fa>", "<TiTlE", "</title>", "</TITLE >", "</titl", "<tıtle>",
    "<tİtle>", "</tıtle>", "<", ">", "/", "a", " ", "\n", "é", "ı", "İ", "خبر", "\u200c",
]  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_TITLE_PARTS), max_size=14).map("".join))
def test_title_of_the_utf8_of_a_page_is_the_title_of_its_text(body: str) -> None:
    assert title_of(body.encode()) == title_of(body)


@pytest.mark.parametrize(
    ("body", "title"),
    [
        ("<html><TITLE class=x> Asr Iran </title>", "Asr Iran"),
        ("<title>one<title>two</title>", "two"),  # "<title>one<" is not followed by "</title"
        ("<title>a</b><title>c</TITLE>", "c"),
        ("<tİtle>dotted</title>", "dotted"),  # IGNORECASE on text: "i" matches "İ"
        ("<title>no end", None),
        ("é" * 40_000 + "<title>late</title>", "late"),  # 80,000 bytes, 40,016 characters
        ("a" * 65_530 + "<title>cut</title>", None),  # beyond the 65,536 characters searched
    ],
)
def test_title_of_cases(body: str, title: str | None) -> None:
    assert title_of(body) == title
    assert title_of(body.encode()) == title
