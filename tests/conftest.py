"""Suite-wide checks before any test runs: the code under test is this checkout's, and its
compiled modules are not older than their sources."""

from __future__ import annotations

from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dideban"

# Modules compiled at install time (setup.py) from these sources. A build in the source tree
# (`pip install -e .`) shadows the source: once the source is edited, tests would run the old
# build without a word.
COMPILED = ("pipeline/_native.pyx", "pipeline/analysis.py")


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
    for rel in COMPILED:
        source = SRC / rel
        for built in source.parent.glob(source.stem + ".*.so"):
            if built.stat().st_mtime < source.stat().st_mtime:
                stale.append(f"{built.name} is older than {rel}")
    if stale:
        raise pytest.UsageError(
            "stale compiled module(s): "
            + "; ".join(stale)
            + ". Rebuild with `python setup.py build_ext --inplace`."
        )
