"""Make the loopback servers of tests/unit/netx/netx_kit.py importable here."""

from __future__ import annotations

import sys
from pathlib import Path

KIT = Path(__file__).resolve().parents[2] / "unit" / "netx"
if str(KIT) not in sys.path:
    sys.path.insert(0, str(KIT))
