"""What the pipeline tests share: the real measurements (every OONI sample and lab
measurement), malformed copies of them with values replaced where the analysis reads, and
an analysis as comparable text.

Used by tests/unit/pipeline (test_pipeline_robust: analysis and store; test_pipeline_native:
pruned against whole) and tests/integration/api/test_malformed_measurements.py (ingest, API
and pages).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import orjson

from dideban.pipeline.analysis import Analysis
from dideban.pipeline.fields import ENVELOPE_READ, PRUNE_SPEC, TEST_KEYS_READ
from dideban.pipeline.readers import RawMeasurement, read_paths

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    ROOT / "tests" / "fixtures" / "ooni-samples",
    ROOT / "tests" / "unit" / "pipeline" / "data" / "lab_iran_websites.jsonl",
]

DOCS = [
    item.doc
    for item in read_paths(SOURCES)
    if isinstance(item, RawMeasurement) and len(orjson.dumps(item.doc)) < 100_000
]

RECORDS = set(PRUNE_SPEC["test_keys"]) - set(TEST_KEYS_READ)

# Each JSON type, and values that broke the analysis, the store or the pages once.
REPLACEMENTS: list[Any] = [
    None, True, 0, -1, 1.5, 2**64 - 1, -(2**63) - 1, "", "²", "1.2.3.4:²", "http://[",
    [], {}, [["a", "b"]], {"a": 1}, "0001-01-01T00:00:00+01:00",
]  # fmt: skip


def analysis_dump(a: Analysis) -> str:
    """The verdict, facts and observations of an analysis, as canonical JSON."""
    return json.dumps(
        [
            dataclasses.asdict(a.verdict),
            sorted(a.facts),
            [dataclasses.asdict(o) for o in a.observations],
        ],
        default=str,
        sort_keys=True,
    )


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every value in `value` (itself first)."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, (*prefix, i))
    return out


def is_read(path: tuple[Any, ...]) -> bool:
    """Whether the analysis reads the value at `path`."""
    if path[0] != "test_keys":
        return path[0] in ENVELOPE_READ
    return len(path) == 1 or path[1] in TEST_KEYS_READ or path[1] in RECORDS


def put(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    """Set a copy of `value` at `path` in `doc` (values such as REPLACEMENTS' lists are
    shared: put twice, the same list could end up inside itself); returns the value that was
    there."""
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    old = parent[path[-1]]
    parent[path[-1]] = copy.deepcopy(value)
    return old


def mutated(rnd: random.Random, n: int) -> list[dict[str, Any]]:
    """`n` measurements, each a copy of one of DOCS with one to three values replaced (mostly
    where the analysis reads) by one of REPLACEMENTS; their uids are m00000, m00001..."""
    out = []
    for i in range(n):
        doc = json.loads(json.dumps(rnd.choice(DOCS)))
        doc["measurement_uid"] = f"m{i:05d}"
        for _ in range(rnd.randint(1, 3)):
            # (Again each time: the last change may have replaced a subtree. The uid stays.)
            every = [p for p in paths(doc)[1:] if p != ("measurement_uid",)]
            if not every:
                break
            read = [p for p in every if is_read(p)] or every
            put(doc, rnd.choice(read if rnd.random() < 0.8 else every), rnd.choice(REPLACEMENTS))
        out.append(doc)
    return out


def web_connectivity_with_control() -> dict[str, Any]:
    """The first web_connectivity measurement with a control and requests."""
    return next(
        d
        for d in DOCS
        if d.get("test_name") == "web_connectivity"
        and isinstance(d["test_keys"].get("control"), dict)
        and d["test_keys"].get("requests")
    )


def each_replacement(doc: dict[str, Any], where: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """A copy of `doc` per place in `where` and value of REPLACEMENTS, with uids t00000..."""
    out = []
    for path in where:
        for value in REPLACEMENTS:
            changed = json.loads(json.dumps(doc))
            put(changed, path, value)
            changed["measurement_uid"] = f"t{len(out):05d}"
            out.append(changed)
    return out
