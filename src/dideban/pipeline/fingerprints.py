# cython: annotation_typing=False
"""Blocking fingerprints in OONI's blocking-fingerprints CSV schema, compiled for speed.

Schema (see `src/dideban/data/fingerprints/SOURCE.md`): name, scope, location_found (`dns`,
`body`, `header.<lowercase name>`), pattern_type (`full`, `prefix`, `contains`, `regexp`),
pattern, expected_countries. Files: every `*.csv` in each folder; a folder with no CSV may hold
OONI's JSON list form (`*.json`). A later folder's entry with the same name replaces the earlier.

`confirmed` (our decision, after OONI's fastpath): a match confirms blocking when its scope is
a known censor (nat, isp, prod, inst, injb, prov) and its expected_countries are empty or
include the probe's country; `vbw` (vague blocking word) confirms only when expected_countries
name the probe's country; `fp` (a known false-positive pattern) never confirms.

Speed: the literal body patterns (contains, prefix, full: all but ~14) go into one
`_native.LiteralSet`, so a body costs ONE scan whatever the number of fingerprints (it
samples the text rather than reading each byte: see its docstring); a hit is then checked
against its pattern type (prefix/full anchor). The set also holds the texts each `regexp`
pattern needs (`_needed_literals`: its literal prefix and its other literal runs of 4+
characters): a regexp runs only on bodies that hold all of them (one that needs none always
runs). The prefix and contains patterns of each header name are a `LiteralSet` of their own
(header values are short: the search costs less than a call into a general automaton did).
DNS `full` patterns are a dict lookup.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from re import _constants as _re_constants  # type: ignore[attr-defined]
from re import _parser as _re_parser  # type: ignore[attr-defined]

from dideban.pipeline import _native

CONFIRMING_SCOPES = frozenset({"nat", "isp", "prod", "inst", "injb", "prov"})
PATTERN_TYPES = ("full", "prefix", "contains", "regexp")


class FingerprintError(ValueError):
    """A fingerprint file that cannot be used (named file, row and reason)."""


@dataclass(frozen=True)
class Fingerprint:
    name: str
    scope: str
    location: str  # dns | body | header.<name>
    pattern_type: str
    pattern: str
    expected_countries: frozenset[str]

    def confirms(self, probe_cc: str) -> bool:
        if self.scope == "fp":
            return False
        if self.scope == "vbw":
            return probe_cc in self.expected_countries
        if self.scope in CONFIRMING_SCOPES:
            return not self.expected_countries or probe_cc in self.expected_countries
        return False

    def regex_source(self) -> str:
        if self.pattern_type == "regexp":
            return self.pattern
        escaped = re.escape(self.pattern)
        if self.pattern_type == "full":
            return r"\A" + escaped + r"\Z"
        if self.pattern_type == "prefix":
            return r"\A" + escaped
        return escaped

    def matches(self, value: str) -> bool:
        if self.pattern_type == "full":
            return value == self.pattern
        if self.pattern_type == "prefix":
            return value.startswith(self.pattern)
        if self.pattern_type == "contains":
            return self.pattern in value
        return re.search(self.pattern, value) is not None


@dataclass(frozen=True, slots=True)
class Match:
    fingerprint: Fingerprint
    confirmed: bool


def _row_to_fp(row: Mapping[str, object], where: str) -> Fingerprint:
    try:
        name = str(row["name"]).strip()
        location = str(row["location_found"]).strip()
        ptype = str(row["pattern_type"]).strip()
        pattern = str(row["pattern"])
    except KeyError as exc:
        raise FingerprintError(f"{where}: missing column {exc}") from None
    if not name:
        raise FingerprintError(f"{where}: empty name")
    if not pattern:
        raise FingerprintError(f"{where}: empty pattern")
    if ptype not in PATTERN_TYPES:
        raise FingerprintError(f"{where}: unknown pattern_type {ptype!r}")
    if location != "dns" and location != "body" and not location.startswith("header."):
        raise FingerprintError(f"{where}: unknown location_found {location!r}")
    if ptype == "regexp":
        try:
            re.compile(pattern)
        except re.error as exc:
            raise FingerprintError(f"{where}: bad regexp {pattern!r}: {exc}") from None
    cc = row.get("expected_countries") or ""
    ccs = cc if isinstance(cc, list) else str(cc).split(",")
    return Fingerprint(
        name=name,
        scope=str(row.get("scope") or "").strip(),
        location=location.lower(),
        pattern_type=ptype,
        pattern=pattern,
        expected_countries=frozenset(c.strip().upper() for c in ccs if str(c).strip()),
    )


def load_folder(folder: Path) -> list[Fingerprint]:
    if not folder.is_dir():
        raise FingerprintError(f"{folder}: not a directory")
    out: list[Fingerprint] = []
    csvs = sorted(folder.glob("*.csv"))
    if csvs:
        for path in csvs:
            with path.open(encoding="utf-8", newline="") as fh:
                for i, row in enumerate(csv.DictReader(fh), start=2):
                    out.append(_row_to_fp(row, f"{path}:{i}"))
        return out
    for path in sorted(folder.glob("*.json")):
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise FingerprintError(f"{path}: not JSON: {exc}") from None
        if not isinstance(items, list):
            raise FingerprintError(f"{path}: expected a JSON list of fingerprints")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise FingerprintError(f"{path}[{i}]: not an object")
            out.append(_row_to_fp(item, f"{path}[{i}]"))
    return out


def default_folder() -> Path:
    return Path(str(resources.files("dideban") / "data" / "fingerprints"))


class FingerprintDB:
    """Compiled fingerprints: `match_dns(answer)`, `match_body(text)`, `match_header(n, v)`."""

    def __init__(self, fingerprints: Iterable[Fingerprint]) -> None:
        by_name: dict[str, Fingerprint] = {}
        for fp in fingerprints:
            by_name[fp.name] = fp
        self.fingerprints = list(by_name.values())
        self._dns_full: dict[str, list[Fingerprint]] = {}
        self._dns_other: list[Fingerprint] = []
        self._body = [f for f in self.fingerprints if f.location == "body"]
        self._headers: dict[str, list[Fingerprint]] = {}
        for fp in self.fingerprints:
            if fp.location == "dns":
                if fp.pattern_type == "full":
                    self._dns_full.setdefault(fp.pattern, []).append(fp)
                else:
                    self._dns_other.append(fp)
            elif fp.location.startswith("header."):
                self._headers.setdefault(fp.location[7:], []).append(fp)
        # When every DNS fingerprint is `full`, matching an answer is one lookup here (the
        # compiled extraction does it itself; the lists must not be changed).
        self.dns_exact: dict[str, list[Fingerprint]] | None = (
            None if self._dns_other else self._dns_full
        )
        self._dns_prefilter = (
            tuple(f.pattern for f in self._dns_other if f.pattern_type == "prefix"),
            tuple(f.pattern for f in self._dns_other if f.pattern_type == "contains"),
            any(f.pattern_type == "regexp" for f in self._dns_other),
        )
        # Per header name: its fingerprints (`_native.HeaderIndex`: the `full` values in a
        # dict, the prefix and contains literals in one LiteralSet, the regexps compiled).
        # Results keep the order of the fingerprints in the files.
        self.header_index: dict[str, _native.HeaderIndex] = {}
        # Header names as a page gives them -> the index of their lower case, None for a
        # name no fingerprint looks at (filled by the compiled extraction as it meets them,
        # up to 4,096 names: a page has ~15 headers, nearly all of them the same few dozen
        # names).
        self.header_memo: dict[str, _native.HeaderIndex | None] = {}
        for hname, hfps in self._headers.items():
            fulls: dict[str, list[int]] = {}
            lits: dict[str, list[tuple[int, bool]]] = {}
            regexps: list[tuple[int, re.Pattern[str]]] = []
            for k, f in enumerate(hfps):
                if f.pattern_type == "full":
                    fulls.setdefault(f.pattern, []).append(k)
                elif f.pattern_type == "regexp":
                    regexps.append((k, re.compile(f.pattern)))
                else:
                    lits.setdefault(f.pattern, []).append((k, f.pattern_type == "prefix"))
            self.header_index[hname] = _native.HeaderIndex(
                hfps,
                fulls,
                _native.LiteralSet(list(lits)) if lits else None,
                list(lits.values()),
                regexps,
            )
        # Body: one search for all the literal patterns (contains, prefix, full) and the
        # texts each regexp needs (`_needed_literals`: every match holds them, so a regexp
        # runs only on a page that holds all of its own, and one that needs none always
        # runs: "<meta name=.*twitter:card" runs on a page with both, not on every page
        # with meta tags).
        self._body_regexps = [f for f in self._body if f.pattern_type == "regexp"]
        literals: dict[str, list[Fingerprint]] = {}
        for fp in self._body:
            if fp.pattern_type != "regexp" and fp.pattern:
                literals.setdefault(fp.pattern, []).append(fp)
        triggers: dict[str, list[int]] = {}
        self._regexp_compiled = [re.compile(f.pattern) for f in self._body_regexps]
        self._regexp_untriggered: list[int] = []
        needed = [_needed_literals(fp.pattern) for fp in self._body_regexps]
        for i, texts in enumerate(needed):
            for text in texts:
                triggers.setdefault(text, []).append(i)
            if not texts:
                self._regexp_untriggered.append(i)
        words = list(dict.fromkeys([*literals, *triggers]))
        # Per word of the LiteralSet: the literal fingerprints it is, the regexps that need it.
        self._words: list[tuple[tuple[Fingerprint, ...], tuple[int, ...]]] = [
            (tuple(literals.get(w, ())), tuple(triggers.get(w, ()))) for w in words
        ]
        # Per regexp needing more than one text: the words of the set it needs.
        index = {w: k for k, w in enumerate(words)}
        self._regexp_needs: dict[int, frozenset[int]] = {
            i: frozenset(index[t] for t in texts)
            for i, texts in enumerate(needed)
            if len(texts) > 1
        }
        self._literals = _native.LiteralSet(words)

    @classmethod
    def load(cls, extra: Iterable[Path] = (), *, include_default: bool = True) -> FingerprintDB:
        fps: list[Fingerprint] = []
        if include_default:
            fps.extend(load_folder(default_folder()))
        for folder in extra:
            fps.extend(load_folder(Path(folder)))
        return cls(fps)

    def match_dns(self, answer: str) -> list[Fingerprint]:
        full = self._dns_full.get(answer)
        if not self._dns_other:
            return list(full) if full else []
        if full is None and not self._dns_gate(answer):
            return []
        found = list(full or ())
        found.extend(f for f in self._dns_other if f.matches(answer))
        return found

    def _dns_gate(self, answer: str) -> bool:
        """Whether any non-`full` DNS fingerprint can match (cheap, exact for prefix and
        contains; regexps are not pre-checked)."""
        prefixes, contains, any_regexp = self._dns_prefilter
        return any_regexp or answer.startswith(prefixes) or any(c in answer for c in contains)

    def match_body(self, body: str | bytes) -> list[Fingerprint]:
        """The fingerprints a page matches; `body` as text, or as its UTF-8 (well-formed)."""
        if not body:
            return []
        hits, n = self._literals.find(body)  # (lone surrogates: see LiteralSet.find)
        if not hits and not self._regexp_untriggered:
            return []
        found: dict[str, Fingerprint] = {}
        run: set[int] = set(self._regexp_untriggered)
        if hits:
            if len(hits) > 1:
                # By end, then longest first: the order matches are reported in (and so
                # the order of an observation's fingerprint names) does not depend on how
                # they were found. Offsets are in UTF-8 bytes: the order is the same as in
                # characters, and so are "starts at 0" and "ends at the end".
                hits.sort(key=_hit_order)
            for i, start, end in hits:
                fps, regexps = self._words[i]
                for fp in fps:
                    if fp.pattern_type == "contains" or (
                        start == 0 and (fp.pattern_type == "prefix" or end == n)
                    ):
                        found[fp.name] = fp
                if regexps:
                    run.update(regexps)
            if run and self._regexp_needs:
                seen = {i for i, _, _ in hits}
                run = {
                    r for r in run if r not in self._regexp_needs or self._regexp_needs[r] <= seen
                }
        if run:
            text = body.decode("utf-8") if isinstance(body, bytes) else body
            for i, fp in enumerate(self._body_regexps):
                if i in run and self._regexp_compiled[i].search(text) is not None:
                    found[fp.name] = fp
        return list(found.values())

    def match_header(self, name: str, value: str) -> list[Fingerprint]:
        idx = self.header_index.get(name.lower())
        return [] if idx is None else idx.match(value)


def _hit_order(hit: tuple[int, int, int]) -> tuple[int, int]:
    return hit[2], hit[1]


def _literal_runs(pattern: str) -> list[tuple[int, str]]:
    """The runs of literal characters in the top-level sequence of `pattern` (every match
    holds each of them), with the position in that sequence where each starts; none for a
    pattern that ignores case or is verbose, or that does not compile."""
    try:
        parsed = _re_parser.parse(pattern)
    except re.error:
        return []
    if parsed.state.flags & (re.IGNORECASE | re.VERBOSE):
        return []
    runs: list[tuple[int, str]] = []
    run: list[str] = []
    for k, (op, arg) in enumerate([*parsed, (None, None)]):
        if op is _re_constants.LITERAL:
            run.append(chr(arg))
        else:
            if run:
                runs.append((k - len(run), "".join(run)))
            run = []
    return runs


def _needed_literals(pattern: str) -> list[str]:
    """Texts every match of `pattern` holds: its literal prefix (of any length), then each
    other run of 4 or more literal characters of its top-level sequence (shorter ones are not
    worth a search)."""
    return list(
        dict.fromkeys(text for at, text in _literal_runs(pattern) if at == 0 or len(text) >= 4)
    )


_DEFAULT: FingerprintDB | None = None


def default_db() -> FingerprintDB:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = FingerprintDB.load()
    return _DEFAULT
