"""Check-in URL selection: country + global lists, least measured first, OONI's limits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from dideban.collector.checkin import CitizenLabLists, choose_urls
from dideban.collector.validate import CheckIn


def _lists(tmp_path: Path) -> CitizenLabLists:
    header = "url,category_code,category_description,date_added,source,notes\n"
    (tmp_path / "ir.csv").write_text(
        header + "".join(f"http://ir{i}.example/,NEWS,News,2020-01-01,x,\n" for i in range(150))
    )
    (tmp_path / "global.csv").write_text(
        header + "".join(f"http://g{i}.example/,HUMR,HR,2020-01-01,x,\n" for i in range(10))
    )
    return CitizenLabLists(tmp_path)


def test_limits_by_run_type_and_charging(tmp_path: Path) -> None:
    lists = _lists(tmp_path)
    timed_battery = CheckIn("IR", "AS197207", "timed", False, ())
    timed_charging = CheckIn("IR", "AS197207", "timed", True, ())
    manual = CheckIn("IR", "AS197207", "manual", False, ())
    assert len(choose_urls(lists, timed_battery, {})) == 20
    assert len(choose_urls(lists, timed_charging, {})) == 100
    assert len(choose_urls(lists, manual, {})) == 160
    assert {u.country_code for u in choose_urls(lists, manual, {})} == {"IR", "XX"}


def test_least_measured_first_and_category_filter(tmp_path: Path) -> None:
    lists = _lists(tmp_path)
    counts = Counter({f"http://ir{i}.example/": 5 for i in range(150)})
    counts["http://ir7.example/"] = 0
    got = choose_urls(lists, CheckIn("IR", "AS1", "timed", False, ()), counts)
    assert got[0].url == "http://ir7.example/"
    assert [u.url for u in got[1:11]] == [f"http://g{i}.example/" for i in range(10)]
    hr = choose_urls(lists, CheckIn("IR", "AS1", "manual", True, ("HUMR",)), counts)
    assert {u.category_code for u in hr} == {"HUMR"} and len(hr) == 10


def test_bundled_lists_load() -> None:
    lists = CitizenLabLists()
    ir = lists.for_country("IR")
    assert len(ir) > 900 and ir[0].country_code == "IR" and ir[-1].country_code == "XX"
