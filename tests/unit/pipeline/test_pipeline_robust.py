"""Malformed measurements never break the analysis or the store.

Every OONI sample and lab measurement, with values replaced anywhere (envelope, control,
records, test-specific keys) by any JSON value or by strings that broke it before (ports
and versions that `str.isdigit` takes and `int` refuses, unclosed IPv6 URLs, integers beyond
the store's BIGINT): the analysis returns a verdict (it does not raise), the same read pruned
or whole, and its rows go into the DuckDB store.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dideban.model.verdict import Observation, Verdict
from dideban.pipeline.analysis import Analysis, analyze
from dideban.pipeline.fingerprints import default_db
from dideban.pipeline.readers import RawMeasurement, iter_lines
from dideban.store import Store
from pipeline_kit import DOCS, REPLACEMENTS, analysis_dump, is_read, paths, put

# Values that broke the analysis once, and the edges of the types the store holds.
TRICKY = st.sampled_from(
    [
        *REPLACEMENTS, "1.2.3.4:99999", "[::1]:", "http://[::1", "https://", "0.²",
        "9999-12-31 23:59:59", "9999-12-31T23:59:59-01:00", "2024-13-45 99:99:99", "\x00",
        "10.10.34.35", "::", 2**63, 1e308, -1e308,
        {"format": "base64", "data": "!!"}, {"format": "base64", "data": "aGk="},
    ]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | TRICKY
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


class Case(bytes):
    """A measurement's JSON text, shown in failures by what was changed."""

    changes: list[tuple[int, tuple[Any, ...], Any]]

    def __repr__(self) -> str:
        return f"Case(DOCS[i], path -> value: {self.changes!r})"


@st.composite
def malformed(draw: st.DrawFn) -> Case:
    k = draw(st.integers(0, len(DOCS) - 1))
    doc = json.loads(json.dumps(DOCS[k]))
    changes = []
    for _ in range(draw(st.integers(1, 3))):
        every = paths(doc)[1:]
        read = [p for p in every if is_read(p)]
        path = draw(st.sampled_from(read if read and draw(st.integers(0, 4)) else every))
        value = draw(VALUES)
        put(doc, path, value)
        changes.append((k, path, value))
    case = Case(json.dumps(doc).encode())  # json: integers beyond 64 bits too
    case.changes = changes
    return case


def _conforms(value: Any, tp: Any) -> bool:
    """Whether `value` is of the annotated type (what the store's column for it takes)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in typing.get_args(tp))
    if origin is list:
        return isinstance(value, list) and all(_conforms(v, typing.get_args(tp)[0]) for v in value)
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if tp is type(None):
        return value is None
    if tp is int:
        return type(value) is int and -(2**63) <= value < 2**63
    return type(value) is tp


@functools.cache
def _fields(cls: type) -> list[tuple[str, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(cls)]


def _check_types(row: Any) -> None:
    for name, tp in _fields(type(row)):
        assert _conforms(getattr(row, name), tp), (name, getattr(row, name))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(malformed())
def test_any_malformed_measurement_gets_a_verdict_pruned_or_whole(text: Case) -> None:
    (pruned,) = iter_lines(text, "f")
    if not isinstance(pruned, RawMeasurement):
        return  # e.g. test_name and test_keys both replaced: reported as unreadable
    a = analyze(pruned, default_db())
    # Then the whole document, decoded as the reader decodes it on demand.
    whole = RawMeasurement(pruned.doc, pruned.uid, pruned.uid_derived, "f", 1)
    assert analysis_dump(a) == analysis_dump(analyze(whole, default_db()))
    _check_types(a.verdict)
    for o in a.observations:
        _check_types(o)


# One measurement of each test, and each value type (with the tricky ones) at every place the
# analysis reads: checked one by one, not left to chance.
ONE_PER_TEST = list({str(d.get("test_name")): d for d in DOCS if d.get("test_keys")}.values())


@pytest.mark.parametrize("doc", ONE_PER_TEST, ids=lambda d: str(d.get("test_name")))
def test_every_value_the_analysis_reads_may_be_of_any_type(doc: dict[str, Any]) -> None:
    db = default_db()
    changed = json.loads(json.dumps(doc))
    # (The first item of each list stands for the rest.)
    where = [
        p for p in paths(changed)[1:] if is_read(p) and all(i == 0 for i in p if type(i) is int)
    ]
    for path in where:
        old = put(changed, path, None)
        for value in REPLACEMENTS:
            put(changed, path, value)
            for raw in iter_lines(json.dumps(changed).encode(), "f"):
                if isinstance(raw, RawMeasurement):
                    try:
                        a = analyze(raw, db)
                    except Exception as exc:  # which value, where: in the report
                        raise AssertionError(f"{path} = {value!r}: {exc!r}") from exc
                    for row in (a.verdict, *a.observations):
                        _check_types(row)
        put(changed, path, old)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> typing.Iterator[Store]:
    s = Store.open(tmp_path_factory.mktemp("robust") / "s.duckdb")
    yield s
    s.close()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(malformed(), min_size=1, max_size=8))
def test_malformed_measurements_go_into_the_store(store: Store, texts: list[Case]) -> None:
    analyses: dict[str, Analysis] = {}  # by uid, the last one winning (as ingest does)
    for text in texts:
        for raw in iter_lines(text, "f"):
            if isinstance(raw, RawMeasurement):
                analyses[raw.uid] = analyze(raw, default_db())
    observations: list[Observation] = [o for a in analyses.values() for o in a.observations]
    verdicts: list[Verdict] = [a.verdict for a in analyses.values()]
    store.replace_derived(observations, verdicts)
    uids = sorted(analyses)
    got = store.conn.execute(
        "SELECT count(*) FROM verdicts WHERE measurement_uid IN (SELECT unnest(?))", [uids]
    ).fetchone()
    assert got is not None and got[0] == len(uids)
    got = store.conn.execute(
        "SELECT count(*) FROM observations WHERE measurement_uid IN (SELECT unnest(?))", [uids]
    ).fetchone()
    assert got is not None and got[0] == len(observations)


def _vouching_case(odd: Any) -> bytes:
    """Probe and control DNS answers that differ, so that the analysis tries to vouch for
    the probe's address by ASN and by the control's TLS outcomes, with `odd` there."""
    doc = {
        "measurement_uid": "u",
        "test_name": "web_connectivity",
        "input": "https://example.org/",
        "probe_cc": "IR",
        "test_keys": {
            "queries": [
                {
                    "hostname": "example.org",
                    "failure": None,
                    "answers": [{"answer_type": "A", "ipv4": "203.0.113.5"}],
                }
            ],
            "tcp_connect": [{"ip": "203.0.113.5", "port": 443, "status": {"failure": None}}],
            "control": {
                "dns": {"failure": None, "addrs": ["198.51.100.7"]},
                "ip_info": {"198.51.100.7": {"asn": odd}, "203.0.113.5": {"asn": odd}},
                "tcp_connect": {"203.0.113.5:443": {"status": True, "failure": None}},
                "tls_handshake": {
                    "198.51.100.7:443": {"status": odd, "failure": odd},
                    "203.0.113.5:443": {"status": odd, "failure": None},
                },
                "http_request": {"failure": None, "status_code": 200, "body_length": 10},
            },
        },
    }
    return json.dumps(doc).encode()


@pytest.mark.parametrize("odd", [{}, [], [1], {"a": [1]}])
def test_unhashable_values_where_addresses_are_vouched_for_count_as_missing(odd: Any) -> None:
    """Objects or arrays (not hashable) as a control's ASN or TLS status used to raise
    TypeError; they count as missing (null)."""
    (raw,) = iter_lines(_vouching_case(odd), "f")
    (null,) = iter_lines(_vouching_case(None), "f")
    assert isinstance(raw, RawMeasurement) and isinstance(null, RawMeasurement)
    assert analysis_dump(analyze(raw, default_db())) == analysis_dump(analyze(null, default_db()))


def test_an_analysis_bug_gives_a_failure_verdict_and_the_cli_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception inside the analysis (a bug, simulated) is data: the measurement gets a
    failure verdict decided by `pipeline.analysis_failed` with its envelope intact, the
    reason is in `Analysis.error`, and `dideban analyze` reports it and analyses the rest."""
    import typer
    from typer.testing import CliRunner

    from dideban.pipeline import analysis
    from dideban.pipeline.cli import register
    from dideban.pipeline.readers import read_paths

    lab = Path(__file__).parent / "data" / "lab_iran_websites.jsonl"
    lines = lab.read_bytes().splitlines()[:3]
    path = tmp_path / "three.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    raws = [r for r in read_paths([path]) if isinstance(r, RawMeasurement)]
    good = [analysis.analyze(r, default_db()) for r in raws]
    assert all(a.error is None for a in good)

    def boom(*args: object) -> object:
        raise KeyError("simulated")

    monkeypatch.setattr(analysis, "_web_connectivity", boom)
    bad = analysis.analyze(raws[1], default_db())
    assert bad.error == "KeyError: 'simulated'" and bad.observations == []
    v, g = bad.verdict, good[1].verdict
    assert (v.failure, v.anomaly, v.blocking_type, v.rules) == (
        True, False, None, ["pipeline.analysis_failed"],
    )  # fmt: skip
    for name in ("measurement_uid", "report_id", "input", "domain", "probe_cc", "probe_asn",
                 "test_name", "measurement_start_time", "raw_path", "raw_line"):  # fmt: skip
        assert getattr(v, name) == getattr(g, name), name

    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["analyze", "--format", "jsonl", str(path)])
    assert result.exit_code == 1
    rows = [json.loads(x) for x in result.stdout.splitlines()]
    assert [r["rules"] for r in rows] == [["pipeline.analysis_failed"]] * 3
    assert result.stderr.count("analysis failed: ") == 3
    assert f"{path}:2: KeyError: 'simulated'" in result.stderr


@pytest.mark.parametrize(
    "where",
    [(), ("test_keys",), ("test_keys", "control"), ("test_keys", "control", "dns")],
)
def test_a_dict_of_another_class_where_json_has_objects_fails_the_analysis_saying_so(
    where: tuple[str, ...],
) -> None:
    """The analysis reads JSON objects by exact class, as the decoders make them. A dict of
    another class (built in Python, never decoded) is not silently read as missing: the
    analysis fails with a TypeError as its reason, and a failure verdict."""
    from collections import OrderedDict

    lab = Path(__file__).parent / "data" / "lab_iran_websites.jsonl"
    doc = json.loads(lab.read_bytes().splitlines()[0])
    assert analyze(RawMeasurement(doc, "u", False, "f"), default_db()).error is None
    if where:
        parent = doc
        for key in where[:-1]:
            parent = parent[key]
        assert type(parent[where[-1]]) is dict
        parent[where[-1]] = OrderedDict(parent[where[-1]])
    else:  # the envelope
        doc = OrderedDict(doc)
    a = analyze(RawMeasurement(doc, "u", False, "f"), default_db())
    assert a.error is not None and a.error.startswith("TypeError"), a.error
    assert a.verdict.failure and a.verdict.rules == ["pipeline.analysis_failed"]


def test_a_measurement_handed_on_as_another_dict_class_is_read_as_a_dict() -> None:
    """`measurement_of` (the readers' and the API's way in) hands the analysis an exact dict:
    a measurement built in Python as a dict of another class gets the verdict of the same
    measurement as JSON decodes it."""
    from collections import OrderedDict

    from dideban.pipeline.readers import measurement_of

    lab = Path(__file__).parent / "data" / "lab_iran_websites.jsonl"
    doc = json.loads(lab.read_bytes().splitlines()[0])
    plain = measurement_of(doc, "f", 1, None)
    odd = measurement_of(OrderedDict(doc), "f", 1, None)
    assert isinstance(plain, RawMeasurement) and isinstance(odd, RawMeasurement)
    assert type(odd.view) is dict and odd.uid == plain.uid
    a, b = analyze(plain, default_db()), analyze(odd, default_db())
    assert b.error is None
    assert b.verdict == a.verdict and b.observations == a.observations
