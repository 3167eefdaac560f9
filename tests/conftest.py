"""Suite-wide checks before any test runs: the code under test is this checkout's, and its
compiled modules are not older than their sources. And hypothesis's settings for the suite."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import settings

# No deadline per example: the suite runs on shared machines whose speed swings by a factor of
# two within minutes, and a slow moment is not a failure (speed is measured by bench/, not by
# tests). A test's own @settings still sets everything else.
settings.register_profile("dideban", deadline=None)
settings.load_profile("dideban")

SRC = Path(__file__).resolve().parents[1] / "src" / "dideban"

# Modules compiled at install time (setup.py) are built in the source tree by
# `pip install -e .`, beside their source (`x.pyx` or `x.py`, with its declarations in `x.pxd`
# if any, and the declaration files these cimport -> `x.cpython-*.so`). Such a build shadows
# the source: once the source is edited, tests would run the old build without a word.


def _sources(module: Path) -> list[Path]:
    """The files a compiled module is built from: its `x.pyx` or `x.py`, its `x.pxd`, and the
    declaration files they cimport from its folder (`_records.pxd`, and what that cimports)
    and the C headers they include (`cdef extern from "_scan.h"`)."""
    found: list[Path] = []
    todo = [module.with_suffix(s) for s in (".pyx", ".py", ".pxd")]
    while todo:
        path = todo.pop()
        if path in found or not path.exists():
            continue
        found.append(path)
        if path.suffix != ".py":  # (a .py cimports nothing: its .pxd does)
            text = path.read_text()
            for name in re.findall(r"^\s*from\s+[\w.]*?(\w+)\s+cimport", text, re.M):
                todo.append(path.with_name(name + ".pxd"))
            for name in re.findall(r'^\s*cdef\s+extern\s+from\s+"([\w.]+\.h)"', text, re.M):
                todo.append(path.with_name(name))
    return found


def pytest_sessionstart(session: pytest.Session) -> None:
    import dideban

    # An editable install made from another checkout (a CI clone, a worktree) would have the
    # tests of this one run that one's code.
    if Path(dideban.__file__).resolve().parent != SRC:
        raise pytest.UsageError(
            f"the tests in {SRC.parents[1]} import dideban from {Path(dideban.__file__).parent}:"
            " install this checkout (`pip install -e .`)"
        )
    stale = []
    for built in SRC.rglob("*.so"):
        stem = built.name.split(".")[0]
        for source in _sources(built.with_name(stem)):
            if built.stat().st_mtime < source.stat().st_mtime:
                stale.append(f"{built.name} is older than {source.relative_to(SRC)}")
    if stale:
        raise pytest.UsageError(
            "stale compiled module(s): "
            + "; ".join(stale)
            + ". Rebuild with `python setup.py build_ext --inplace`."
        )
