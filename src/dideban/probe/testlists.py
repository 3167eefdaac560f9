"""Test lists: what the probe measures.

Inputs come from `--input URL` (repeatable) and `--input-file FILE`, a Citizen Lab test list
(CSV with a header that has at least `url`; `category_code` is kept) or a plain text file of
one URL per line. Everything is validated before anything is measured or written: a bad line
is an error that names the file and line, never a skipped input.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_CATEGORY = "MISC"
MAX_URL_LENGTH = 2048


class TestListError(ValueError):
    """An input that is not a measurable URL or a test list that cannot be read."""

    __test__ = False  # not a pytest class


@dataclass(frozen=True)
class Target:
    url: str
    category_code: str = DEFAULT_CATEGORY


def check_url(url: str, where: str = "input") -> str:
    """The URL itself if web_connectivity can measure it, else TestListError saying why."""
    text = url.strip()
    if not text:
        raise TestListError(f"{where}: empty URL")
    if len(text) > MAX_URL_LENGTH:
        raise TestListError(f"{where}: URL longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() for c in text):
        raise TestListError(f"{where}: URL contains whitespace: {text!r}")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise TestListError(f"{where}: not a valid URL {text!r}: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise TestListError(f"{where}: only http:// and https:// URLs can be measured: {text!r}")
    if not parts.hostname:
        raise TestListError(f"{where}: URL has no host: {text!r}")
    if port == 0:
        raise TestListError(f"{where}: URL has port 0: {text!r}")
    return text


def parse_test_list(text: str, source: str) -> list[Target]:
    """Targets of a Citizen Lab CSV (header with `url`) or of a one-URL-per-line file."""
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    targets: list[Target] = []
    if "," in first and "url" in [c.strip().lower() for c in first.split(",")]:
        reader = csv.DictReader(io.StringIO(text))
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        reader.fieldnames = fields
        for row in reader:
            where = f"{source}:{reader.line_num}"
            url = (row.get("url") or "").strip()
            if not url and not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue
            category = (row.get("category_code") or "").strip() or DEFAULT_CATEGORY
            targets.append(Target(check_url(url, where), category))
    else:
        for number, line in enumerate(lines, start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            targets.append(Target(check_url(stripped, f"{source}:{number}")))
    if not targets:
        raise TestListError(f"{source}: no URLs")
    return targets


def load_test_list(path: Path) -> list[Target]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TestListError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TestListError(f"{path}: cannot read: {exc}") from exc
    return parse_test_list(text, str(path))


def unique(targets: Iterable[Target]) -> list[Target]:
    """Targets in order, each URL once (the first category wins)."""
    seen: set[str] = set()
    out: list[Target] = []
    for t in targets:
        if t.url not in seen:
            seen.add(t.url)
            out.append(t)
    return out


def gather_targets(urls: Iterable[str], input_file: Path | None) -> list[Target]:
    """All inputs of a run, validated; TestListError if any is bad or there are none."""
    targets = [Target(check_url(u, f"--input {u!r}")) for u in urls]
    if input_file is not None:
        targets.extend(load_test_list(input_file))
    if not targets:
        raise TestListError("no inputs: give --input URL or --input-file FILE")
    return unique(targets)
