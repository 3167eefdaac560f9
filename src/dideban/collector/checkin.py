"""Choosing the URLs a probe measures at check-in, from the Citizen Lab test lists.

OONI's probe-services return the country's list plus the global list, least measured first,
and how many depends on the run: all of them on a manual run, 100 when a timed run is on a
charger, 20 on battery. The collector counts what it has stored per input URL.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

from dideban.collector.validate import CheckIn

BATTERY_LIMIT: Final = 20
CHARGING_LIMIT: Final = 100


@dataclass(frozen=True)
class ListedURL:
    url: str
    category_code: str
    country_code: str  # "XX" for the global list, as OONI writes it


class CitizenLabLists:
    """The loaded lists: `<cc>.csv` per country and `global.csv`."""

    def __init__(self, directory: Path | None = None) -> None:
        self._by_cc: dict[str, list[ListedURL]] = {}
        if directory is None:
            root = resources.files("dideban").joinpath("data", "test-lists")
            texts = {
                e.name: e.read_text(encoding="utf-8")
                for e in root.iterdir()
                if e.name.endswith(".csv") and not e.name.startswith("00-")
            }
        else:
            texts = {
                p.name: p.read_text(encoding="utf-8")
                for p in directory.glob("*.csv")
                if not p.name.startswith("00-")
            }
        for name, text in texts.items():
            stem = name[: -len(".csv")]
            cc = "XX" if stem == "global" else stem.upper()
            rows = csv.DictReader(io.StringIO(text))
            self._by_cc[cc] = [
                ListedURL(r["url"], r.get("category_code") or "MISC", cc)
                for r in rows
                if r.get("url")
            ]

    def for_country(self, probe_cc: str) -> list[ListedURL]:
        own = self._by_cc.get(probe_cc, []) if probe_cc != "XX" else []
        return own + self._by_cc.get("XX", [])


def limit_for(req: CheckIn) -> int | None:
    if req.run_type == "manual":
        return None
    return CHARGING_LIMIT if req.charging else BATTERY_LIMIT


def choose_urls(lists: CitizenLabLists, req: CheckIn, counts: Mapping[str, int]) -> list[ListedURL]:
    """The URLs for this probe: filtered by category, least measured first (list order breaks
    ties, so the answer is deterministic), cut to the run's limit."""
    urls = lists.for_country(req.probe_cc)
    seen: set[str] = set()
    unique = []
    for u in urls:
        if u.url not in seen:
            seen.add(u.url)
            unique.append(u)
    if req.category_codes:
        wanted = set(req.category_codes)
        unique = [u for u in unique if u.category_code in wanted]
    ordered = sorted(enumerate(unique), key=lambda iu: (counts.get(iu[1].url, 0), iu[0]))
    chosen = [u for _, u in ordered]
    limit = limit_for(req)
    return chosen if limit is None else chosen[:limit]
