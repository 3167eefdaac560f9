"""Category codes for measured URLs, from the Citizen Lab test lists.

OONI measurements do not carry the category of their input; OONI's API joins it from the
Citizen Lab lists, and so does Dideban at ingest. A country's own list (`<cc>.csv`) wins over
`global.csv`; an exact URL match wins over a match on the host name alone.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_FOLDER = Path(__file__).resolve().parents[1] / "data" / "test-lists"


def _url_key(url: str) -> tuple[str, str | None] | None:
    """(the URL as a key, its host name); None for a URL urlsplit refuses ("http://[")."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return None
    path = parts.path or "/"
    return f"{parts.scheme.lower()}://{(host or '').lower()}{path}", host


def _host_key(host: str) -> str:
    host = host.lower().strip(".")
    return host[4:] if host.startswith("www.") else host


@dataclass
class _List:
    by_url: dict[str, str] = field(default_factory=dict)
    by_host: dict[str, str] = field(default_factory=dict)


@dataclass
class CategoryIndex:
    lists: dict[str, _List] = field(default_factory=dict)  # "global" or a lower-case CC

    @classmethod
    def load(cls, folder: Path = DEFAULT_FOLDER) -> CategoryIndex:
        index = cls()
        for path in sorted(folder.glob("*.csv")):
            if path.name.startswith("00-"):
                continue  # the legends
            entries = _List()
            with path.open(encoding="utf-8", newline="") as fh:
                for row in csv.DictReader(fh):
                    url, code = (row.get("url") or "").strip(), (row.get("category_code") or "")
                    if not url or not code:
                        continue
                    keyed = _url_key(url)
                    if keyed is None:
                        continue
                    key, host = keyed
                    entries.by_url.setdefault(key, code.strip())
                    if host:
                        entries.by_host.setdefault(_host_key(host), code.strip())
            index.lists[path.stem.lower()] = entries
        return index

    def lookup(self, url: str | None, probe_cc: str | None) -> str | None:
        """The category of `url` as seen from `probe_cc`, or None when no list has it."""
        if not url:
            return None
        order = [self.lists.get((probe_cc or "").lower()), self.lists.get("global")]
        chosen = [entries for entries in order if entries is not None]
        keyed = _url_key(url)
        if keyed is None:
            return None
        key, host = keyed
        for entries in chosen:
            if key in entries.by_url:
                return entries.by_url[key]
        if host:
            for entries in chosen:
                code = entries.by_host.get(_host_key(host))
                if code is not None:
                    return code
        return None
