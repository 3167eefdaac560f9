"""Category codes come from the Citizen Lab lists: country list first, exact URL first."""

from __future__ import annotations

from pathlib import Path

from dideban.ingest.categories import CategoryIndex

HEADER = "url,category_code,category_description,date_added,source,notes\n"


def _index(tmp_path: Path) -> CategoryIndex:
    (tmp_path / "global.csv").write_text(
        HEADER
        + "https://www.example.org/,NEWS,News,2020-01-01,x,\n"
        + "https://example.org/special/,HUMR,Human Rights,2020-01-01,x,\n"
        + "http://only-global.net/,GRP,Social,2020-01-01,x,\n",
        encoding="utf-8",
    )
    (tmp_path / "ir.csv").write_text(
        HEADER + "https://www.example.org/,POLR,Political,2020-01-01,x,\n", encoding="utf-8"
    )
    (tmp_path / "00-LEGEND-category_codes.csv").write_text("CategoryCode,CategoryName\n")
    return CategoryIndex.load(tmp_path)


def test_country_list_wins_over_global(tmp_path: Path) -> None:
    index = _index(tmp_path)
    assert index.lookup("https://www.example.org/", "IR") == "POLR"
    assert index.lookup("https://www.example.org/", "DE") == "NEWS"


def test_exact_url_wins_over_host_and_host_ignores_www(tmp_path: Path) -> None:
    index = _index(tmp_path)
    assert index.lookup("https://example.org/special/", "DE") == "HUMR"
    assert index.lookup("https://example.org/other", "DE") == "NEWS"  # host match, no www
    assert index.lookup("http://ONLY-GLOBAL.net", "IR") == "GRP"  # falls back to global


def test_unknown_or_missing_input_has_no_category(tmp_path: Path) -> None:
    index = _index(tmp_path)
    assert index.lookup("https://unlisted.example/", "IR") is None
    assert index.lookup(None, "IR") is None


def test_the_shipped_lists_know_the_iranian_list() -> None:
    index = CategoryIndex.load()
    assert {"global", "ir"} <= set(index.lists)
    assert len(index.lists["ir"].by_url) > 800


def test_urls_urlsplit_refuses_have_no_category_and_are_skipped_in_lists(tmp_path: Path) -> None:
    index = _index(tmp_path)
    assert index.lookup("http://[", "IR") is None  # used to raise ValueError: ingest died
    assert index.lookup("http://[::1", "DE") is None
    (tmp_path / "de.csv").write_text(
        HEADER + "http://[bad,NEWS,News,2020-01-01,x,\nhttps://good.de/,GRP,Social,2020-01-01,x,\n",
        encoding="utf-8",
    )
    assert CategoryIndex.load(tmp_path).lookup("https://good.de/", "DE") == "GRP"
