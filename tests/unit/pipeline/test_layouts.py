"""The C layouts of the slot classes that the compiled analysis reads directly
(`_layouts.pxd`, `_records.pxd`) against the classes, and how a mismatch is refused."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from dideban.pipeline import _native, analysis
from dideban.pipeline.observations import Extracted, HttpExchange


def _class(key: str) -> type:
    module, _, name = key.rpartition(".")
    cls: type = getattr(importlib.import_module(module), name)
    return cls


@pytest.mark.parametrize("key", sorted(_native.layouts()))
def test_each_layout_is_its_class(key: str) -> None:
    cls = _class(key)
    slots, size = _native.layouts()[key]
    assert _native.class_layout(cls) == (slots, size)
    names = [name for name, _ in slots]
    # Every slot of the class, by name (CPython's order), one pointer each after the header.
    assert names == sorted(cls.__slots__)
    if dataclasses.is_dataclass(cls):
        assert sorted(f.name for f in dataclasses.fields(cls)) == names
    header = object.__basicsize__
    assert [offset for _, offset in slots] == [header + 8 * k for k in range(len(slots))]
    assert size == header + 8 * len(slots)


def test_the_analysis_checks_the_classes_it_reads() -> None:
    _native.check_layouts(*(_class(key) for key in _native.layouts()))


@dataclasses.dataclass(slots=True)
class Pair:
    first: object
    second: object


@dataclasses.dataclass(slots=True)
class Triple:
    first: object
    second: object
    third: object


@dataclasses.dataclass(slots=True)
class Renamed:
    first: object
    other: object


class Based(Pair):
    __slots__ = ()


def _key(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


PAIR = _native.class_layout(Pair)


def test_a_class_as_its_layout_says_passes() -> None:
    _native.check_layouts(Pair, expected={_key(Pair): PAIR})


@pytest.mark.parametrize(
    ("cls", "says"),
    [
        (Triple, "changed"),  # a field added
        (Renamed, "changed"),  # a field renamed (same size)
        (Based, "base"),  # a subclass
    ],
)
def test_a_class_unlike_its_layout_is_refused(cls: type, says: str) -> None:
    with pytest.raises(ImportError, match=says):
        _native.check_layouts(cls, expected={_key(cls): PAIR})


def test_a_class_without_a_layout_is_refused() -> None:
    with pytest.raises(ImportError, match="no C layout"):
        _native.check_layouts(Pair)


def test_the_analysis_is_compiled_with_typed_reads() -> None:
    # What the rest of this file is about: the compiled module, not its source.
    assert not analysis.__file__.endswith(".py")


def test_none_for_a_typed_record_raises_as_python_does() -> None:
    # Compiled with nonecheck: a field of None raises AttributeError (caught by `analyze`,
    # which reports a failed analysis), it is not read from address 0.
    with pytest.raises(AttributeError):
        analysis._same_page(None, {"status_code": 200})
    with pytest.raises(AttributeError):
        analysis._im("whatsapp", {}, None)


def test_another_class_for_a_typed_record_raises() -> None:
    # Compiled, a typed variable takes its class only (in Python, this lookalike would do).
    class Lookalike:
        tls = http = dns = tcp = ()

    with pytest.raises(TypeError):
        analysis._im("whatsapp", {}, Lookalike())


def test_fields_read_from_the_layout_are_the_fields() -> None:
    ex = Extracted(
        http=[
            HttpExchange("https://v.whatsapp.net/v2/reg", "eof_error", None, [], None, None),
            HttpExchange("https://web.whatsapp.com/", "eof_error", None, [], None, None),
        ]
    )
    facts, _, _, _, s_http = analysis._im("whatsapp", {}, ex)
    assert facts == {"registration_failed", "http_blocked"}
    assert s_http == analysis.layer_scores("http", "eof_error", None)
