"""Sub-commands of `dideban` for the pipeline part."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this part's commands to the `dideban` app (none yet)."""
    del app
