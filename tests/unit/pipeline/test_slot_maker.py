"""`_native.SlotMaker`: builds slots dataclasses (Observation, Verdict...) without running
their generated __init__; what it builds must be what the class builds."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import sys
import weakref

import pytest

from dideban.model.verdict import Observation, Verdict
from dideban.pipeline import _native
from dideban.pipeline._native import SlotMaker
from dideban.pipeline.analysis import Analysis
from dideban.pipeline.fingerprints import Fingerprint, Match, default_db
from dideban.pipeline.observations import Extracted, HttpExchange, as_text, title_of


def _values(cls: type) -> tuple[object, ...]:
    """A distinct value per field (objects of several kinds)."""
    count = len(dataclasses.fields(cls))
    return tuple([k] if k % 3 == 0 else (None if k % 3 == 1 else f"v{k}") for k in range(count))


@pytest.mark.parametrize(
    "cls",
    [Observation, Verdict, Analysis, Extracted, HttpExchange, Match],
    ids=lambda c: c.__name__,
)
def test_makes_what_the_class_makes(cls: type) -> None:
    values = _values(cls)
    made = SlotMaker(cls)(*values)
    assert type(made) is cls
    assert made == cls(*values)
    assert dataclasses.astuple(made) == dataclasses.astuple(cls(*values))
    for f, v in zip(dataclasses.fields(cls), values, strict=True):
        assert getattr(made, f.name) is v
    assert SlotMaker(cls).names == tuple(f.name for f in dataclasses.fields(cls))


def test_real_values_and_frozen_class() -> None:
    fp = Fingerprint("dns_ir", "nat", "dns", "full", "10.10.34.35", frozenset({"IR"}))
    m = SlotMaker(Match)(fp, True)
    assert m == Match(fp, True) and hash(m) == hash(Match(fp, True))
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.confirmed = False  # type: ignore[misc]
    v = SlotMaker(Verdict)(
        "u", "r", None, None, "IR", "AS1", "web_connectivity", dt.datetime(2026, 1, 1),
        None, True, True, False, "dns", *([0.5] * 12), ["f"], ["wc.dns"], None, None,
        False, "p", 3, "1",
    )  # fmt: skip
    assert v.measurement_start_time == dt.datetime(2026, 1, 1) and v.raw_line == 3
    assert v == Verdict(*dataclasses.astuple(v))


def test_references_are_owned_and_released() -> None:
    """Each slot holds its own reference: the values outlive their callers' references
    while the instance lives, and are freed with it (no leak, no early free)."""

    class Probe:
        pass

    maker = SlotMaker(HttpExchange)
    p = Probe()
    ref = weakref.ref(p)
    before = sys.getrefcount(p)
    made = [maker(p, None, None, [], None, None) for _ in range(1000)]
    assert sys.getrefcount(p) == before + 1000
    del p
    assert ref() is not None and all(m.url is ref() for m in made)
    del made
    gc.collect()
    assert ref() is None


def test_instances_take_part_in_garbage_collection() -> None:
    """A cycle through a made instance is collected (the instance is GC-tracked)."""

    class Box:
        held: object = None

    maker = SlotMaker(Analysis)
    box = Box()
    a = maker(None, box, set(), None)
    box.held = a
    ref = weakref.ref(box)
    assert gc.is_tracked(a)
    del a, box
    gc.collect()
    assert ref() is None


def test_wrong_number_of_values() -> None:
    maker = SlotMaker(Match)
    with pytest.raises(TypeError, match="Match takes 2 values, not 1"):
        maker(None)
    with pytest.raises(TypeError, match="not 3"):
        maker(None, None, None)


@dataclasses.dataclass
class _Plain:
    a: int


@dataclasses.dataclass(slots=True)
class _PostInit:
    a: int

    def __post_init__(self) -> None:
        self.a += 1


@dataclasses.dataclass(slots=True)
class _Base:
    a: int


@dataclasses.dataclass(slots=True)
class _Derived(_Base):
    b: int


@dataclasses.dataclass(slots=True)
class _OwnInit:
    a: int

    def __init__(self, a: int) -> None:
        self.a = a * 2


class _NotADataclass:
    __slots__ = ("a",)


@pytest.mark.parametrize(
    ("cls", "why"),
    [
        (_Plain, "slots=True"),
        (_PostInit, "__post_init__"),
        (_Derived, "base class"),
        (_OwnInit, "own __new__ or __init__"),
        (_NotADataclass, "not a dataclass"),
        (int, "not a dataclass"),
    ],
)
def test_refuses_classes_it_cannot_build_right(cls: type, why: str) -> None:
    with pytest.raises(TypeError, match=why):
        SlotMaker(cls)


def test_extracted_observations_own_their_values() -> None:
    """The extraction writes each Observation's slots from its values directly (no tuple on
    the way): each slot holds its own reference, released with the observation."""
    uid = "".join(["u", "id-of-this-test"])  # a string of its own, not an interned one
    tk = {
        "queries": [
            {"hostname": "a.example", "answers": [{"answer_type": "A", "ipv4": "1.2.3.4"}]}
        ],
        "tcp_connect": [{"ip": "1.2.3.4", "port": 443, "status": {"failure": None}}],
        "tls_handshakes": [{"address": "1.2.3.4:443", "server_name": "a.example"}],
        "requests": [{"request": {"url": "https://a.example/"}, "response": {"code": 200}}],
    }
    before = sys.getrefcount(uid)
    made = [_native.extract(tk, uid, "ZZ", default_db()) for _ in range(100)]
    assert sys.getrefcount(uid) == before + 100 * 4
    first = made[0].observations
    assert [(o.kind, o.observation_idx, o.measurement_uid) for o in first] == [
        ("dns", 0, uid), ("tcp", 1, uid), ("tls", 2, uid), ("http", 3, uid)
    ]  # fmt: skip
    assert (first[2].ip, first[2].port, first[2].tls_server_name) == ("1.2.3.4", 443, "a.example")
    assert first[3].http_status_code == 200 and first[3].fingerprints == []
    del made, first
    gc.collect()
    assert sys.getrefcount(uid) == before


def test_bind_refuses_an_observation_class_of_other_fields() -> None:
    """The extraction writes Observation's fields in a fixed order (`_native.OBSERVATION_FIELDS`):
    a class whose fields differ is refused, and the extraction goes on with the one it has."""
    names = list(_native.OBSERVATION_FIELDS)
    names[4], names[5] = names[5], names[4]  # hostname and ip swapped
    Swapped = dataclasses.make_dataclass("Swapped", names, slots=True)
    with pytest.raises(TypeError, match="fields changed"):
        _native.bind(Swapped, Extracted, HttpExchange, Match, as_text, title_of)
    tk = {"tcp_connect": [{"ip": "1.2.3.4", "port": 80, "status": {"failure": None}}]}
    (o,) = _native.extract(tk, "u", "ZZ", default_db()).observations
    assert type(o) is Observation and o.ip == "1.2.3.4" and o.hostname is None


def test_a_plain_slots_class_is_built_from_its_slots_in_order() -> None:
    """Given the class's __slots__, the values are stored in that order, standing in for
    its __init__: what iter_lines builds for a line read pruned is what the class builds."""
    from dideban.pipeline.readers import RawMeasurement, _new_raw

    text = b'{"measurement_uid": "u", "test_name": "t", "test_keys": {}}'
    view = {"measurement_uid": "u", "test_name": "t", "test_keys": {}}
    made = _new_raw(None, text, None, 3, "f.jsonl", "u", False, view)
    by_class = RawMeasurement(view, "u", False, "f.jsonl", 3, text=text)
    assert type(made) is RawMeasurement
    for name in RawMeasurement.__slots__:
        assert getattr(made, name) == getattr(by_class, name), name
    assert made == by_class and made.doc == by_class.doc == view


class _Slotted:
    __slots__ = ("a", "b")


class _SlottedDerived(_Slotted):
    __slots__ = ("c",)


class _SlottedNew:
    __slots__ = ("a",)

    def __new__(cls) -> _SlottedNew:
        return super().__new__(cls)


@pytest.mark.parametrize(
    ("cls", "slots", "why"),
    [
        (_Slotted, ("b", "a"), "not its __slots__"),
        (_Slotted, ("a",), "not its __slots__"),
        (_NotADataclass, ("a", "b"), "not its __slots__"),
        (_SlottedDerived, ("c",), "base class"),
        (_SlottedNew, ("a",), "own __new__"),
    ],
)
def test_refuses_slots_that_are_not_the_class_s_own(
    cls: type, slots: tuple[str, ...], why: str
) -> None:
    with pytest.raises(TypeError, match=why):
        SlotMaker(cls, slots)
    made = SlotMaker(_Slotted, ("a", "b"))(1, 2)
    assert (made.a, made.b) == (1, 2)
