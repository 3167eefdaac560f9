"""ooni/data's analysis_web_measurement rows (ug-analysis.sql): parse every row, check the
score shapes, and reproduce the per-layer scores our scoring gives the same failures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dideban.pipeline.analysis import layer_scores

SQL = Path(__file__).resolve().parents[2] / "fixtures" / "ooni-samples" / "ug-analysis.sql"
_TOKEN = re.compile(r"NULL|'(?:[^'\\]|\\.|'')*'|-?\d+(?:\.\d+)?|[()]")


def rows() -> list[dict[str, object]]:
    text = SQL.read_text(encoding="utf-8")
    out: list[dict[str, object]] = []
    for stmt in text.split("INSERT INTO analysis_web_measurement")[1:]:
        head, body = stmt.split("VALUES", 1)
        cols = re.findall(r"`(\w+)`", head)
        values: list[str] | None = None
        for tok in _TOKEN.findall(body):
            if tok == "(":
                values = []
            elif tok == ")":
                assert values is not None and len(values) == len(cols), values
                out.append({c: _value(v) for c, v in zip(cols, values, strict=True)})
                values = None
            elif values is not None:
                values.append(tok)
    return out


def _value(v: str) -> object:
    if v == "NULL":
        return None
    if v.startswith("'"):
        return v[1:-1]
    return float(v)


ROWS = rows()


def test_every_row_parses() -> None:
    assert len(ROWS) > 400
    assert all(r["probe_cc"] == "UG" and r["test_name"] == "web_connectivity" for r in ROWS)


def test_score_shapes_and_ranges() -> None:
    for r in ROWS:
        for layer in ("dns", "tcp", "tls"):
            t = [float(r[f"{layer}_{k}"]) for k in ("blocked", "down", "ok")]  # type: ignore[arg-type]
            assert all(0.0 <= x <= 1.0 for x in t), r["measurement_uid"]
        assert r["top_probe_analysis"] in (
            None,
            "false",
            "dns",
            "tcp_ip",
            "http-failure",
            "http-diff",
        )


FAILURE_ROWS = [
    (
        layer,
        r[f"top_{layer}_failure"],
        tuple(float(r[f"{layer}_{k}"]) for k in ("blocked", "down", "ok")),
    )  # type: ignore[arg-type]
    for r in ROWS
    for layer in ("dns", "tcp", "tls")
    if r[f"top_{layer}_failure"] is not None
]


def test_there_are_failure_rows_to_compare() -> None:
    assert {layer for layer, _, _ in FAILURE_ROWS} == {"dns", "tcp", "tls"}


@pytest.mark.parametrize(("layer", "failure", "expected"), sorted(set(FAILURE_ROWS)))
def test_our_layer_score_for_a_failure_matches_ooni_data(
    layer: str, failure: str, expected: tuple[float, float, float]
) -> None:
    # The rows where one layer failed (control reachable): same (blocked, down, ok).
    got = layer_scores(layer, failure, True)
    assert got == pytest.approx(expected)


def test_ok_layers_score_as_ooni_data() -> None:
    ok = [r for r in ROWS if r["top_probe_analysis"] == "false" and r["top_tcp_failure"] is None]
    assert ok
    assert layer_scores("tcp", None, True) == (0.0, 0.0, 1.0)
    assert all((r["tcp_blocked"], r["tcp_down"], r["tcp_ok"]) == (0, 0, 1) for r in ok)
