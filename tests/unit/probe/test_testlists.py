from __future__ import annotations

from pathlib import Path

import pytest

from dideban.probe.testlists import (
    Target,
    TestListError,
    check_url,
    gather_targets,
    load_test_list,
    parse_test_list,
)

IR_CSV = Path(__file__).resolve().parents[3] / "src" / "dideban" / "data" / "test-lists" / "ir.csv"


def test_ir_list_loads_with_categories() -> None:
    targets = load_test_list(IR_CSV)
    assert len(targets) == 903
    assert targets[0] == Target("http://anidalton.blogfa.com/", "CULTR")


def test_plain_list_and_comments() -> None:
    got = parse_test_list("# mine\nhttps://a.org/\n\nhttp://b.org/x\n", "f.txt")
    assert [t.url for t in got] == ["https://a.org/", "http://b.org/x"]
    assert {t.category_code for t in got} == {"MISC"}


@pytest.mark.parametrize(
    "bad",
    ["", "ftp://a.org/", "https:///nohost", "http://a b.org/", "http://a.org:99999/", "x" * 3000],
)
def test_bad_urls_are_rejected_with_a_reason(bad: str) -> None:
    with pytest.raises(TestListError):
        check_url(bad)


def test_bad_csv_line_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "list.csv"
    f.write_text("url,category_code\nhttp://ok.org/,NEWS\nnot a url,NEWS\n", encoding="utf-8")
    with pytest.raises(TestListError, match=r"list.csv:3"):
        load_test_list(f)


def test_missing_file_and_empty_inputs(tmp_path: Path) -> None:
    with pytest.raises(TestListError, match="no such file"):
        load_test_list(tmp_path / "nope.csv")
    with pytest.raises(TestListError, match="no inputs"):
        gather_targets([], None)
    empty = tmp_path / "empty.csv"
    empty.write_text("url,category_code\n", encoding="utf-8")
    with pytest.raises(TestListError, match="no URLs"):
        load_test_list(empty)


def test_gather_deduplicates_in_order(tmp_path: Path) -> None:
    f = tmp_path / "l.csv"
    f.write_text("url,category_code\nhttp://a.org/,NEWS\nhttp://b.org/,HUMR\n", encoding="utf-8")
    got = gather_targets(["http://b.org/", "http://c.org/"], f)
    assert [t.url for t in got] == ["http://b.org/", "http://c.org/", "http://a.org/"]
