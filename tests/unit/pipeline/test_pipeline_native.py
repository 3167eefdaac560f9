"""The compiled hot path (`_native.pyx`) against plain definitions.

- `decode_pruned` decodes exactly what orjson decodes, minus the keys the spec leaves out, and
  refuses (ValueError) every text orjson refuses;
- reading JSONL pruned gives the same analysis as reading the whole measurement, for every
  OONI sample and lab measurement;
- `LiteralSet.find` finds every occurrence that a naive search finds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dideban.pipeline import _native
from dideban.pipeline.analysis import analyze
from dideban.pipeline.fingerprints import default_db
from dideban.pipeline.readers import RawMeasurement, iter_lines, read_paths
from pipeline_kit import analysis_dump, paths, put

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "tests" / "fixtures" / "ooni-samples"
LAB = Path(__file__).parent / "data" / "lab_iran_websites.jsonl"

# JSON values as orjson round-trips them (finite floats, integers within 64 bits).
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=40,
)


def dumps(value: Any, style: int) -> bytes:
    if style == 0:
        return orjson.dumps(value)
    if style == 1:
        return json.dumps(value, ensure_ascii=True).encode()  # \\uXXXX escapes, pairs too
    return json.dumps(value, ensure_ascii=False, indent=1).encode()  # raw UTF-8, whitespace


class RawOf:
    """Equal to a RAW value (JSON text) that `decode_raw` decodes to `value`."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, bytes) and _native.decode_raw(other) == self.value

    def __repr__(self) -> str:
        return f"RawOf({self.value!r})"


def prune(value: Any, spec: Any) -> Any:
    """The spec's meaning, in plain Python (see `_native.pyx`)."""
    if spec is None:
        return value
    if spec is _native.RAW:
        return RawOf(value)
    if spec is _native.KEYS:
        return tuple(value) if isinstance(value, dict) else value
    if spec is bytes:
        return value.encode("utf-8") if isinstance(value, str) else value
    if spec is tuple:
        return tuple(value) if isinstance(value, list) else value
    if isinstance(spec, dict) and isinstance(value, dict):
        return {k: prune(v, spec[k]) for k, v in value.items() if k in spec}
    if isinstance(spec, list) and isinstance(value, list):
        return [prune(v, spec[0]) for v in value]
    return value


def spec_for(value: Any, draw: st.DrawFn) -> Any:
    """A random spec that fits `value` (keeps some keys, descends into some)."""
    if isinstance(value, dict) and value and draw(st.booleans()):
        keys = draw(st.lists(st.sampled_from(sorted(value)), unique=True))
        return {k: spec_for(value[k], draw) for k in keys} | {"not-there": None}
    if isinstance(value, list) and value and draw(st.booleans()):
        return [spec_for(value[0], draw)]
    return draw(st.sampled_from([None, bytes, tuple, _native.RAW, _native.KEYS]))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, st.integers(0, 2), st.data())
def test_decode_pruned_is_orjson_minus_the_pruned_keys(
    value: Any, style: int, data: st.DataObject
) -> None:
    text = dumps(value, style)
    whole = orjson.loads(text)
    assert _native.decode_pruned(text, None) == whole
    spec = spec_for(value, data.draw)
    assert _native.decode_pruned(text, spec) == prune(whole, spec)
    assert _native.decode_pruned(memoryview(b"  " + text + b"\n")[2:], spec) == prune(whole, spec)


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33])
@pytest.mark.parametrize("kind", ["plain", "escaped", "non-ascii"])
def test_keys_of_every_length_and_kind_are_found_in_a_pruned_object(size: int, kind: str) -> None:
    """Keys are matched against the spec's names, and string values decoded, whatever their
    length (short plain ones are found from two 8-byte words, values from four), escaped or
    not, ASCII or not, near the end of the text or not; a control character in either is
    refused."""
    name = ("é" if kind == "non-ascii" else "k") * max(size - 1, 0) + ("x" if size else "")
    text = f'{{"{name}": 1, "other": {{"{name}": [2, "{name}"]}}, "{name}z": "{name}"}}'
    if kind == "escaped" and size:
        escaped = "\\u" + format(ord(name[0]), "04x") + name[1:]
        text = text.replace('"' + name, '"' + escaped)
    spec = {name: None, "other": {name: None}}
    for data in (text.encode(), text.encode() + b" " * 40):
        assert _native.decode_pruned(data, spec) == {name: 1, "other": {name: [2, name]}}
        assert _native.decode_pruned(data, {name + "z": None}) == {name + "z": name}
        assert _native.decode_pruned(data, None) == orjson.loads(data)
    with pytest.raises(ValueError):
        _native.decode_pruned(f'{{"{name}\x01": 1}}'.encode(), spec)
    with pytest.raises(ValueError):
        _native.decode_pruned(f'{{"{name}": "{name}\x01"}}'.encode(), spec)


# Bytes that end a plain run in a string scan (`_scan.h`), and bytes on either side of the
# classes that must not: space, DEL (0x7F: ASCII, allowed raw), "!" and "[" / "]" (next to the
# quote and the backslash).
RUN_ENDERS = [
    b'"',
    b"\\n",
    b"\\u00e9",
    b"\x01",
    b"\x1f",
    "\u00e9".encode(),
    "\u4e16".encode(),
    b"\xff",
]
RUN_PLAIN = [b" ", b"\x7f", b"!", b"#", b"[", b"]", b"~"]


@pytest.mark.parametrize("byte", RUN_ENDERS + RUN_PLAIN, ids=repr)
def test_a_byte_that_ends_a_plain_run_is_seen_at_every_place_of_a_block(byte: bytes) -> None:
    """Strings are scanned 16 bytes at a time (SSE2; two words elsewhere), keys and short
    values from one or two blocks: a quote, an escape, a control character or a non-ASCII byte
    at any place of the first, second or third block, whatever the string's offset in the
    text, is read as orjson reads it (or refused with it), as a kept value, as bytes, skipped
    and as a key; other bytes are plain."""
    for place in range(0, 49):
        for shift in (0, 1, 7, 8, 15):
            text = b"a" * place + byte + b"b" * (place % 5)
            name = b"k" * place + byte
            doc = b"[" + b" " * shift + b'{"s": "' + text + b'", "' + name + b'": "' + text + b'"}]'
            try:
                whole = orjson.loads(doc)
            except orjson.JSONDecodeError:
                for spec in (None, [{"s": None}], [{"s": bytes}], [{}]):
                    with pytest.raises(ValueError):
                        _native.decode_pruned(doc, spec)
                continue
            value, key = whole[0]["s"], list(whole[0])[1]
            assert _native.decode_pruned(doc, None) == whole
            assert _native.decode_pruned(doc, [{"s": None}]) == [{"s": value}]
            assert _native.decode_pruned(doc, [{"s": bytes}]) == [{"s": value.encode()}]
            assert _native.decode_pruned(doc, [{}]) == [{}]
            assert _native.decode_pruned(doc, [{key: None}]) == [{key: whole[0][key]}]


def test_the_scan_is_vectorised_where_the_machine_allows() -> None:
    """On x86-64 (SSE2 is part of it) the string scans take 16 bytes in one vector step."""
    import platform

    if platform.machine().lower() in ("x86_64", "amd64"):
        assert _native.SCAN_SIMD is True
    else:
        assert isinstance(_native.SCAN_SIMD, bool)


def test_keys_that_differ_in_one_byte_or_in_length_are_told_apart() -> None:
    """Short keys are compared with the spec's names as two words: names of one length and
    with the same first and last bytes (so in one hash bucket) that differ in one byte of
    either word, or names that differ only in length, are each found as themselves."""
    names = ["abcdefghijklmno", "abcdefghijkXmno", "abcXefghijklmno", "abcdefgho", "abcdefo", "ao"]
    text = orjson.dumps({n: i for i, n in enumerate(names)} | {"abcdefghijkYmno": -1})
    for kept in (names, names[::2], names[1::2]):
        spec = dict.fromkeys(kept)
        for data in (text, text + b" " * 40):
            assert _native.decode_pruned(data, spec) == {n: names.index(n) for n in kept}
    spec = dict.fromkeys(["abcdefghijkZmno", "abcZefghijklmno", "abcdefgh", "abcdefghijklmnoo"])
    assert _native.decode_pruned(text + b" " * 40, spec) == {}


@settings(max_examples=500)
@given(json_values, st.data())
def test_decode_pruned_refuses_what_orjson_refuses(value: Any, data: st.DataObject) -> None:
    text = bytearray(orjson.dumps({"k": value, "s": 'é\\"x'}))
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(text) - 1))
        op = data.draw(st.sampled_from(["set", "delete", "insert"]))
        byte = data.draw(st.sampled_from(b'{}[],:"\\ 0-1.eE+tfnu\x00\x1f\x80\xc3\xa9\xff'))
        if op == "set":
            text[pos] = byte
        elif op == "delete":
            del text[pos]
        else:
            text.insert(pos, byte)
    raw = bytes(text)
    # Whole, and with strings as UTF-8 bytes (one of them, "s", escaped and not ASCII), and
    # kept as text (RAW).
    as_utf8 = {"k": bytes, "s": bytes}
    as_raw = {"k": _native.RAW, "s": _native.RAW}
    as_keys = {"k": _native.KEYS, "s": _native.KEYS}
    try:
        expected = orjson.loads(raw)
    except orjson.JSONDecodeError:
        with pytest.raises(ValueError):
            _native.decode_pruned(raw, None)
        for spec in (as_utf8, as_raw, as_keys):
            try:
                kept = _native.decode_pruned(raw, spec)
            except ValueError:
                continue
            # A value the spec skips (a key changed, say "k" into "{") or keeps as text
            # (RAW) is checked as the standard parser checks it: it lets through only what
            # that parser takes (1e999, a lone surrogate), and decode_raw decodes it so.
            assert kept == prune(json.loads(raw), spec)
        return
    # (orjson takes integers beyond 64 bits as floats, and so does decode_raw.)
    if isinstance(expected, dict):
        assert _native.decode_pruned(raw, as_raw) == prune(expected, as_raw)
        assert _native.decode_pruned(raw, as_keys) == prune(expected, as_keys)
    try:
        got = _native.decode_pruned(raw, None)
    except _native.Unsupported:
        return  # left to the reference decoders (an integer beyond 64 bits, which orjson rounds)
    assert got == expected
    assert _native.decode_pruned(raw, as_utf8) == prune(expected, as_utf8)


@pytest.mark.parametrize("byte", range(256))
def test_every_character_after_a_backslash_is_read_as_orjson_reads_it(byte: int) -> None:
    """Each byte after a backslash (the escapes' table), and each after `\\u00` in either
    of the last two hex places (the hex digits' table), in a string decoded whole, as UTF-8
    bytes and skipped: taken with orjson's value, or refused where orjson refuses it."""
    texts = [b"ab\\" + bytes([byte]) + b"cd"]
    for hexes in (b"4" + bytes([byte]), bytes([byte]) + b"4"):
        texts.append(b"\\u00" + hexes + b"!")
    for inner in texts:
        raw = b'{"k": "' + inner + b'", "s": ["' + inner + b'"], "n": 1}'
        try:
            expected = orjson.loads(raw)
        except orjson.JSONDecodeError:
            for spec in (None, {"k": None}, {"k": bytes}, {"n": None}):
                with pytest.raises(ValueError):
                    _native.decode_pruned(raw, spec)
            continue
        assert _native.decode_pruned(raw, None) == expected, raw
        assert _native.decode_pruned(raw, {"k": bytes}) == {"k": expected["k"].encode()}, raw
        assert _native.decode_pruned(raw, {"n": None}) == {"n": 1}, raw  # "k", "s" skipped


def test_a_number_beyond_the_doubles_is_refused_decoded_and_let_through_skipped() -> None:
    """orjson refuses a number that rounds to infinity; the whole decode does too (the reader
    then asks the standard parser, which takes it as inf). Skipped, such a number is let
    through, as the standard parser lets it through (found by hypothesis: a mutation turned
    the key "k" into "{", so the value was skipped)."""
    raw = b'{"{": [null, 1.797693134862316e308, 1e999], "s": "x"}'
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(raw)
    with pytest.raises(ValueError):
        _native.decode_pruned(raw, None)
    assert _native.decode_pruned(raw, {"k": bytes, "s": bytes}) == {"s": b"x"}
    assert json.loads(raw)["{"][1] == float("inf")


@pytest.mark.parametrize(
    "text",
    [
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": "\\ud800"}',
        b'["\\udc00x"]',
        b'{"body": "x\\udc00"}',
        b"[" * 600 + b"]" * 600,
    ],
)
def test_decode_pruned_leaves_the_lenient_cases_to_the_reference(text: bytes) -> None:
    with pytest.raises(_native.Unsupported):
        _native.decode_pruned(text, None)
    with pytest.raises(_native.Unsupported):
        _native.decode_pruned(text, {"a": bytes, "body": bytes})
    # ... and reading goes on: the standard parser takes such a line (here the value is one the
    # analysis reads; in a skipped value a lone surrogate is let through, as json lets it).
    line = (
        b'{"test_name": "x", "measurement_uid": "u", "test_keys": {"control": {"dns": '
        + text
        + b"}}}"
    )
    (item,) = iter_lines(line, "f")
    assert isinstance(item, RawMeasurement) and item.view is item.doc


@settings(max_examples=400, deadline=None)
@given(
    st.booleans(),
    st.text(alphabet="0123456789", min_size=1, max_size=10),
    st.text(alphabet="0123456789", min_size=1, max_size=12),
)
def test_decimals_decode_to_the_nearest_double(negative: bool, whole: str, fraction: str) -> None:
    """Short decimals take a fast path (`_exact_decimal`); every decimal, short or not, is
    the double the standard conversion gives, bit for bit (the sign of zero too)."""
    text = ("-" if negative else "") + (whole.lstrip("0") or "0") + "." + fraction
    got = _native.decode_pruned(f'{{"t": {text}}}'.encode(), None)["t"]
    assert type(got) is float
    assert got.hex() == float(text).hex() and str(got) == str(float(text))


@pytest.mark.parametrize(
    "text",
    ["0.0", "-0.0", "0.1", "0.3", "1.0000000000000002", "999999999999999.9", "1234567890.12345",
     "9007199254740993.0", "0.000000000000000000001", "123.456e2", "-7.5E-3"],
)  # fmt: skip
def test_decimals_at_the_edges_of_the_fast_path(text: str) -> None:
    got = _native.decode_pruned(f"[{text}]".encode(), None)[0]
    assert got.hex() == float(text).hex() and str(got) == str(float(text))


@settings(max_examples=1500, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"a",
                b"\\",
                b"u",
                b"0",
                b"d",
                b"8",
                b"D",
                b"c",
                b"F",
                b'\\"',
                b"\\n",
                b"\\u00e9",
                b"\\ud83d",
                b"\\ude00",
                b"\xc3\xa9",
                b"\xc3",
                b"\xa9",
                b"\xed\xa0\x80",
                b"\xf0\x9f\x98\x80",
                b"\x01",
                b"\x7f",
                b"\xff",
                b"z" * 9,
                b'"',
            ]
        ),
        max_size=12,
    )
)
def test_bytes_spec_agrees_with_the_str_path(parts: list[bytes]) -> None:
    """A string read as bytes (one pass: `_utf8_string`) is the UTF-8 of the string read
    as str, and is refused where that is refused, with the same kind of error (escapes,
    surrogates, controls, bytes that are not UTF-8, a quote that ends it early)."""
    text = b'["' + b"".join(parts) + b'"]'
    try:
        expected: Any = [_native.decode_pruned(text, None)[0].encode("utf-8")]
    except ValueError as exc:
        with pytest.raises(type(exc)):
            _native.decode_pruned(text, [bytes])
        return
    assert _native.decode_pruned(text, [bytes]) == expected


@pytest.mark.parametrize(
    "text",
    [b'"\xff"', b'["ok", "\xc3"]', b'{"b": "\\u0041\xed\xa0\x80"}', b'"\xc0\xaf"'],
)
def test_utf8_spec_checks_the_text_as_decoding_does(text: bytes) -> None:
    """Bytes that are not UTF-8 (a lone byte, a cut sequence, an encoded surrogate, an
    overlong form) are refused with the `bytes` spec as when decoding to str."""
    with pytest.raises(UnicodeDecodeError):
        _native.decode_pruned(text, None)
    spec = {b"{"[0]: {"b": bytes}, b"["[0]: [bytes]}.get(text[0], bytes)
    with pytest.raises(UnicodeDecodeError):
        _native.decode_pruned(text, spec)


def _analysis_dump(raw: RawMeasurement) -> str:
    return analysis_dump(analyze(raw, default_db()))


def _assert_pruned_reads_as_whole(doc: dict[str, Any]) -> None:
    """`doc` as a JSONL line is read through the pruned path, and analysed as the same
    document read whole."""
    text = orjson.dumps(doc)
    (pruned,) = iter_lines(text, "f")
    assert isinstance(pruned, RawMeasurement) and pruned._text is not None
    whole = RawMeasurement(orjson.loads(text), pruned.uid, False, "f", 1)
    assert _analysis_dump(pruned) == _analysis_dump(whole)


def test_pruned_reading_gives_the_analysis_of_the_whole_measurement() -> None:
    """PRUNE_SPEC names everything the analysis reads: over every sample and lab measurement,
    the analysis of the pruned view equals that of the whole document."""
    compared = 0
    for item in read_paths([SAMPLES, LAB]):
        if not isinstance(item, RawMeasurement) or not item.uid:
            continue
        whole = item.doc
        text = orjson.dumps(dict(whole, measurement_uid=item.uid))
        (pruned,) = iter_lines(text, item.path)
        assert isinstance(pruned, RawMeasurement)
        assert pruned.view is not whole and pruned._text is not None, "read through the pruned path"
        full = RawMeasurement(orjson.loads(text), item.uid, False, item.path, 1)
        assert _analysis_dump(pruned) == _analysis_dump(full), item.path
        compared += 1
    assert compared >= 70


def test_the_whole_document_is_there_on_demand_and_then_used() -> None:
    text = b'{"test_name": "web_connectivity", "measurement_uid": "u", "extra": [1], "test_keys": {"blocking": false, "x": 1}}'
    (item,) = iter_lines(text, "f")
    assert isinstance(item, RawMeasurement)
    assert "extra" not in item.view and "x" not in item.view["test_keys"]
    assert item.doc == orjson.loads(text)
    item.doc["test_keys"]["blocking"] = "dns"
    assert item.view["test_keys"]["blocking"] == "dns"  # changes to the doc are what is analysed


words_st = st.lists(
    st.text(alphabet="abé\ufffd<t", min_size=1, max_size=10), min_size=1, max_size=30, unique=True
)


# Longer words too (anchored on 8-byte windows, found from every 5th position), from a small
# alphabet so that they share grams and overlap.
long_words_st = st.lists(
    st.text(alphabet="ab<t\ufffd", min_size=1, max_size=24), min_size=1, max_size=30, unique=True
)


@settings(max_examples=300)
@given(
    words_st | long_words_st,
    st.text(alphabet="abé\ufffd<tx", max_size=200) | st.text(alphabet="ab<t", max_size=300),
)
def test_literal_set_finds_every_occurrence(words: list[str], text: str) -> None:
    data = text.encode()
    naive = set()
    for k, w in enumerate(words):
        wb = w.encode()
        i = data.find(wb)
        while i >= 0:
            naive.add((k, i, i + len(wb)))
            i = data.find(wb, i + 1)
    hits, size = _native.LiteralSet(words).find(text)
    assert size == len(data)
    assert sorted(hits) == sorted(naive) and len(hits) == len(naive)
    assert _native.LiteralSet(words).find(data)[0] == hits


@settings(max_examples=300)
@given(
    st.lists(st.binary(min_size=4, max_size=40), min_size=1, max_size=6),
    st.sampled_from([(4, 5), (2, 3)]),
)
def test_literal_set_anchors_each_word_on_its_rarest_run_of_grams(
    words: list[bytes], shape: tuple[int, int]
) -> None:
    """`_window` (the run of grams a word is sampled by) is the first run whose grams are
    held by the fewest words in all, as the sum over every run would say."""
    size, stride = shape
    common = _native._commonness(words, size)
    for w in words:
        runs = len(w) - size - stride + 2
        if runs < 1:
            with pytest.raises(ValueError):
                _native._window(w, size, stride, common)
            continue
        sums = [sum(common[w[o + d : o + d + size]] for d in range(stride)) for o in range(runs)]
        first = sums.index(min(sums))
        assert _native._window(w, size, stride, common) == range(first, first + stride)


def test_literal_set_searches_lone_surrogates_as_surrogatepass_encodes_them() -> None:
    """A str with a lone surrogate (a \\ud800 escape gives one) has no UTF-8: it is searched
    as its "surrogatepass" bytes, offsets and size in those bytes; other texts are refused."""
    lits = _native.LiteralSet(["blocked page", "x:"])
    text = "\ud800x: blocked page"
    data = text.encode("utf-8", "surrogatepass")
    hits, size = lits.find(text)
    assert sorted(hits) == sorted(lits.find(data)[0]) == [(0, 6, 18), (1, 3, 5)]
    assert size == len(data) == 18
    with pytest.raises(TypeError):
        lits.find(bytearray(data))


def test_literal_set_finds_each_word_at_every_offset() -> None:
    """Every place in a text is covered by the sampled scans (long words' 4-byte grams every
    5th byte, short words' 2-byte grams every 3rd, run together 15 bytes a turn, then each to
    the end): a word of each kind is found at every offset, with every length of text after
    it."""
    words = ["peyvandha-blockpage", "iframe10", "Denie", "deny", "404"]
    lits = _native.LiteralSet(words)
    for k, w in enumerate(words):
        for offset in range(32):
            for trail in range(17):
                text = "." * offset + w + "." * trail
                hits, _ = lits.find(text)
                assert hits == [(k, offset, offset + len(w))], (w, offset, trail)


@pytest.mark.parametrize("block", [1, 7, 64, 4096])
def test_jsonl_read_in_blocks_is_read_as_a_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """Lines cut by block boundaries, blank lines, bad lines and a last line without a newline
    come out as from the whole file at once, with the same line numbers."""
    import dideban.pipeline.readers as readers

    lines = [
        b"",
        b'{"test_name": "a", "measurement_uid": "u1", "test_keys": {"blocking": false}}',
        b"{bad",
        b"",
        b'{"test_name": "b", "measurement_uid": "u2", "test_keys": {"x": "' + b"y" * 300 + b'"}}',
        b'{"test_name": "c", "test_keys": {}}',
        b'{"test_name": "d", "measurement_uid": "u4"}',
    ]
    data = b"\n".join(lines)
    path = tmp_path / "m.jsonl"
    path.write_bytes(data)
    whole = [
        str(x) if not isinstance(x, RawMeasurement) else (x.uid, x.line, x.doc)
        for x in iter_lines(data, str(path))
    ]
    monkeypatch.setattr(readers, "BLOCK_SIZE", block)
    blocks = [
        str(x) if not isinstance(x, RawMeasurement) else (x.uid, x.line, x.doc)
        for x in readers.read_file(path)
    ]
    assert blocks == whole
    assert [w[1] for w in whole if isinstance(w, tuple)] == [2, 5, 6, 7]


@pytest.mark.parametrize("block", [64, 1000, 1 << 20])
def test_measurements_read_in_blocks_keep_their_lines_after_the_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """Each block is a buffer of its own (never reused): measurements kept after the whole
    file was read still hold their own lines, and decode them whole later."""
    import dideban.pipeline.readers as readers

    docs = [
        {"test_name": "t", "measurement_uid": f"u{k}", "test_keys": {"x": "y" * (k * 37)}}
        for k in range(40)
    ]
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(d) for d in docs) + b"\n")
    monkeypatch.setattr(readers, "BLOCK_SIZE", block)
    kept = [x for x in readers.read_file(path) if isinstance(x, RawMeasurement)]
    assert all(x._text is not None for x in kept)  # read pruned, the whole not decoded yet
    assert [x.doc for x in kept] == docs
    assert [x.line for x in kept] == list(range(1, 41))


def test_new_buffer_is_a_bytearray_of_the_size_asked() -> None:
    buf = _native.new_buffer(4096)
    assert type(buf) is bytearray and len(buf) == 4096
    buf[:3] = b"abc"
    assert buf[:3] == b"abc" and len(_native.new_buffer(0)) == 0
    with pytest.raises(ValueError):
        _native.new_buffer(-1)


_RECORD_DOCS = [
    item.doc
    for item in read_paths([LAB])
    if isinstance(item, RawMeasurement) and item.doc.get("test_keys")
][:12]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(range(len(_RECORD_DOCS))), st.data())
def test_records_of_any_shape_are_extracted_alike_pruned_or_whole(
    k: int, data: st.DataObject
) -> None:
    """Any value anywhere in the records the extraction reads (a string where a number
    belongs, an object where a list belongs, keys repeated...) gives the same analysis read
    pruned (records as tuples) as read whole (records as dicts)."""
    doc = json.loads(json.dumps(_RECORD_DOCS[k]))
    doc["measurement_uid"] = "u"
    tk = doc["test_keys"]
    for _ in range(data.draw(st.integers(1, 4))):
        key = data.draw(st.sampled_from(["queries", "tcp_connect", "tls_handshakes", "requests"]))
        if key not in tk:
            continue
        put(tk, data.draw(st.sampled_from(paths(tk[key], (key,)))), data.draw(json_values))
    _assert_pruned_reads_as_whole(doc)


_CONTROL_DOCS = [
    item.doc
    for item in read_paths([SAMPLES, LAB])
    if isinstance(item, RawMeasurement)
    and item.doc.get("test_name") == "web_connectivity"
    and isinstance((item.doc.get("test_keys") or {}).get("control"), dict)
    and item.doc["test_keys"]["control"]
]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(range(len(_CONTROL_DOCS))), st.data())
def test_controls_of_any_shape_are_analysed_alike_pruned_or_whole(
    k: int, data: st.DataObject
) -> None:
    """The pruned view keeps of the control only fields.CONTROL_SPEC (the sections read only
    where a step failed as their JSON text). Any value anywhere in the control, sections
    added or taken away, gives the same analysis as the whole document."""
    doc = json.loads(json.dumps(_CONTROL_DOCS[k]))
    doc["measurement_uid"] = "u"
    tk = doc["test_keys"]
    for _ in range(data.draw(st.integers(1, 4))):
        control = tk["control"]
        if not isinstance(control, dict) or data.draw(st.booleans()):
            put(
                tk, data.draw(st.sampled_from(paths(control, ("control",)))), data.draw(json_values)
            )
        elif control and data.draw(st.booleans()):
            del control[data.draw(st.sampled_from(sorted(control)))]
        else:
            control[data.draw(st.sampled_from(["dns", "http_request", "tcp_connect", "x"]))] = (
                data.draw(json_values)
            )
    _assert_pruned_reads_as_whole(doc)


def _a_example(tcp_failure: str | None, **test_keys: Any) -> dict[str, Any]:
    """A web_connectivity measurement of http://a.example/: resolved to 198.18.0.9, whose
    port 80 it connected to (or failed to), with these test keys besides."""
    return {
        "measurement_uid": "u",
        "test_name": "web_connectivity",
        "input": "http://a.example/",
        "test_keys": {
            "queries": [
                {"hostname": "a.example", "answers": [{"answer_type": "A", "ipv4": "198.18.0.9"}]}
            ],
            "tcp_connect": [{"ip": "198.18.0.9", "port": 80, "status": {"failure": tcp_failure}}],
            **test_keys,
        },
    }


def test_control_sections_read_on_failure_are_kept_as_text_and_decoded_there() -> None:
    """The control's TCP results, kept as text by the pruned decode, decide a TCP failure as
    in the whole document; a control with none of the sections read counts as none."""
    doc = _a_example(
        "connection_refused",
        control={
            "dns": {"failure": None, "addrs": ["198.18.0.9"]},
            "tcp_connect": {"198.18.0.9:80": {"status": True, "failure": None}},
            "http_request": {"failure": "connection_refused"},
        },
    )
    (pruned,) = iter_lines(orjson.dumps(doc), "f")
    assert isinstance(pruned, RawMeasurement)
    assert type(pruned.view["test_keys"]["control"]["tcp_connect"]) is bytes  # text, for now
    a = analyze(pruned, default_db())
    assert "tcp_all_failed" in a.facts  # the control reached the address: decoded, read
    assert (a.verdict.tcp_blocked, a.verdict.tcp_down) == (0.75, 0.25)  # not "down": (0, 1)
    assert _analysis_dump(pruned) == analysis_dump(
        analyze(RawMeasurement(doc, "u", False, "f", 1), default_db())
    )
    doc["test_keys"]["control"] = {"x_other": {"status": True}}
    for raw in (
        RawMeasurement(doc, "u", False, "f"),
        next(iter(iter_lines(orjson.dumps(doc), "f"))),
    ):
        assert isinstance(raw, RawMeasurement)
        assert "control_unavailable" in analyze(raw, default_db()).facts


@pytest.mark.parametrize(
    ("control_headers", "probe_header", "same_page"),
    [
        ({"Date": "d", "X-Site": "1", "Server": "s"}, "x-site", True),  # an uncommon one shared
        ({"Date": "d", "X-Site": "1"}, "X-Other", False),  # an uncommon one not shared
        ({"Date": "d", "Server": "s"}, "Server", True),  # none uncommon on either side
        ({"Date": "d"}, "X-Other", False),  # the probe's has one, the control's none
        ({}, "Server", False),  # the control has no headers
        (["X-Site"], "X-Site", False),  # not an object: no headers
        ({"x-site": 1, "\\u0058-Site": 2}, "X-SITE", True),  # escaped names, unescaped
        # A lone surrogate, which the names-only decode refuses: the object is decoded whole.
        ({"\\ud800": 1, "X-Site": 2}, "x-site", True),
    ],
)
def test_control_header_names_decide_the_page_as_in_the_whole_document(
    control_headers: Any, probe_header: str, same_page: bool
) -> None:
    """The control's response headers are kept as their text and only their names decoded
    (the KEYS spec): where the status codes agree, and neither the body lengths nor the
    titles match, the uncommon header names decide, as in the whole document."""
    response = {"code": 200, "body": "x" * 10, "headers_list": [["Date", "d"], [probe_header, "v"]]}
    doc = _a_example(
        None,
        requests=[{"request": {"url": "http://a.example/"}, "response": response}],
        control={
            "dns": {"failure": None, "addrs": ["198.18.0.9"]},
            "http_request": {
                "status_code": 200,
                "body_length": 5000,
                "title": "",
                "headers": control_headers,
                "failure": None,
            },
        },
    )
    text = orjson.dumps(doc).replace(b"\\\\u", b"\\u")  # the names' escapes as such
    (pruned,) = iter_lines(text, "f")
    assert isinstance(pruned, RawMeasurement) and pruned._text is not None
    kept = pruned.view["test_keys"]["control"]["http_request"]["headers"]
    assert type(kept) is bytes  # the text; only its names are decoded, where they are read
    whole_doc = json.loads(text)  # (the standard parser takes a lone surrogate)
    whole = whole_doc["test_keys"]["control"]["http_request"]["headers"]
    if b"\\ud800" in kept:
        with pytest.raises(ValueError):
            _native.decode_pruned(kept, _native.KEYS)
    else:
        assert _native.decode_pruned(kept, _native.KEYS) == (
            tuple(whole) if isinstance(whole, dict) else whole
        )
    a = analyze(pruned, default_db())
    assert ("http_diff" not in a.facts) is same_page
    full = RawMeasurement(whole_doc, "u", False, "f", 1)
    assert _analysis_dump(pruned) == _analysis_dump(full)


@pytest.mark.parametrize(
    "headers",
    [
        b'{"Server": "nginx", "X-Many": ["a", "b"], "X-B64": {"format": "base64", "data": "aGk="}}',
        b'{"Via": "proxy", "X-Big": 123456789012345678901234567890, "X-Odd": "\\ud800"}',
        b'{"Server": "x", "Server": "y"}',
        b"[1, 2]",
        b'"text"',
    ],
)
def test_headers_object_kept_as_text_reads_as_the_whole_document(headers: bytes) -> None:
    """`headers` (read only without `headers_list`, as in legacy measurements) is kept as
    its JSON text by the pruned decode (the RAW spec), then decoded as the whole document
    is: the same headers and the same analysis, big integers and lone surrogates too."""
    line = (
        b'{"measurement_uid": "u", "test_name": "web_connectivity", "input": "http://a.example/",'
        b' "test_keys": {"requests": [{"request": {"url": "http://a.example/"}, "response":'
        b' {"code": 200, "body": "<title>t</title>", "headers": ' + headers + b"}}]}}"
    )
    (pruned,) = iter_lines(line, "f")
    assert isinstance(pruned, RawMeasurement) and pruned._text is not None
    raw = pruned.view["test_keys"]["requests"][0][2][2]
    assert type(raw) is bytes  # the text, not yet decoded
    db = default_db()
    got = _native.extract(pruned.view["test_keys"], "u", "ZZ", db).http[0].headers
    pruned_analysis = analyze(pruned, db)
    pruned_dump = _analysis_dump(pruned)
    whole = RawMeasurement(pruned.doc, "u", False, "f", 1)  # orjson, else json (as the reader)
    assert _native.decode_raw(raw) == whole.doc["test_keys"]["requests"][0]["response"]["headers"]
    assert got == _native.extract(whole.doc["test_keys"], "u", "ZZ", db).http[0].headers
    assert pruned_analysis.observations == analyze(whole, db).observations
    assert pruned_dump == _analysis_dump(whole)
    if headers.startswith(b'{"Server": "nginx"'):
        assert got == [("Server", "nginx"), ("X-Many", "a, b"), ("X-B64", "hi")]


@pytest.mark.parametrize(
    ("address", "ip", "port"),
    [
        ("1.2.3.4:443", "1.2.3.4", 443),
        ("[2001:db8::1]:8443", "2001:db8::1", 8443),
        ("1.2.3.4:65535", "1.2.3.4", 65535),
        ("1.2.3.4:65536", "1.2.3.4", None),
        ("1.2.3.4:²", "1.2.3.4", None),  # str.isdigit says yes, int() says no
        ("1.2.3.4:٤٤٣", "1.2.3.4", None),  # Arabic-Indic digits: not a port on the wire
        ("1.2.3.4:", "1.2.3.4", None),
        ("1.2.3.4:0443x", "1.2.3.4", None),
        ("1.2.3.4:123456", "1.2.3.4", None),
        ("example.org", "example.org", None),
        (443, None, None),
    ],
)
def test_tls_handshake_addresses_of_any_form_are_split_without_failing(
    address: Any, ip: str | None, port: int | None
) -> None:
    """A TLS handshake's `address` gives the observation's ip and port; a port that is not
    1 to 5 ASCII digits up to 65535 is None (it used to raise on "²"), read pruned or whole."""
    doc = {
        "measurement_uid": "u",
        "test_name": "web_connectivity",
        "input": "https://example.org/",
        "test_keys": {"tls_handshakes": [{"address": address, "failure": None}]},
    }
    text = orjson.dumps(doc)
    (pruned,) = iter_lines(text, "f")
    assert isinstance(pruned, RawMeasurement)
    whole = RawMeasurement(orjson.loads(text), "u", False, "f", 1)
    for raw in (pruned, whole):
        (tls,) = analyze(raw, default_db()).observations
        assert (tls.kind, tls.ip, tls.port) == ("tls", ip, port)


@pytest.mark.parametrize("count", [0, 1, 2, 8, 9, 40])
def test_tuple_spec_of_any_length(count: int) -> None:
    values = [f"v{k}" if k % 2 else [k, {"k": k}] for k in range(count)]
    text = orjson.dumps({"a": values, "b": "not an array"})
    assert _native.decode_pruned(text, {"a": tuple, "b": tuple}) == {
        "a": tuple(values),
        "b": "not an array",
    }
    # An error anywhere in the array leaves nothing behind (the elements gathered so far are
    # released) and is the same error as without the spec.
    cut = text[: text.index(b',"b"') - 1] + b",}"
    with pytest.raises(_native.Unsupported):
        _native.decode_pruned(cut, {"a": tuple})


def test_raw_and_keys_specs_survive_copies() -> None:
    """Specs are compiled by identity: a copied or pickled RAW or KEYS is the one RAW or
    KEYS, so a deep copy of PRUNE_SPEC prunes as PRUNE_SPEC does."""
    import copy
    import pickle

    from dideban.pipeline.fields import PRUNE_SPEC

    for spec in (_native.RAW, _native.KEYS):
        assert copy.deepcopy(spec) is spec
        assert pickle.loads(pickle.dumps(spec)) is spec
    line = (LAB.read_bytes().splitlines() or [b"{}"])[0]
    assert _native.decode_pruned(line, copy.deepcopy(PRUNE_SPEC)) == _native.decode_pruned(
        line, PRUNE_SPEC
    )
