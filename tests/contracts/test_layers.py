"""The import contract of STYLE.md: layers depend one way, and only netx touches sockets.

Each package may import only the dideban packages listed for it. `cli.py` modules are the
top of the stack and may import anything. The measuring stack and the data layers may not
import socket-level or transport modules: that is netx's job (servers and the lab sit on top).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "dideban"

ALLOWED: dict[str, set[str]] = {
    "model": {"model"},
    "netx": {"model", "netx"},
    "measure": {"model", "netx", "measure"},
    "nettests": {"model", "netx", "measure", "nettests"},
    "probe": {"model", "netx", "measure", "nettests", "probe"},
    "pipeline": {"model", "pipeline"},
    "store": {"model", "store"},
    "ingest": {"model", "pipeline", "store", "ingest"},
    "testhelper": {"model", "netx", "measure", "testhelper"},
    "collector": {"model", "collector"},
    "api": {"model", "store", "pipeline", "api", "web"},
    "web": {"model", "store", "pipeline", "api", "web"},
    "lab": {"model", "netx", "lab"},
}

TRANSPORTS = {
    "socket",
    "ssl",
    "httpx",
    "h11",
    "aiohttp",
    "urllib.request",
    "http.client",
    "dns.query",
    "dns.asyncquery",
    "dns.resolver",
    "dns.asyncresolver",
}
NO_TRANSPORT = {"model", "measure", "nettests", "probe", "pipeline", "store", "ingest"}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{a.name}" for a in node.names)
    return names


def _violations() -> list[str]:
    problems: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if len(rel.parts) < 2 or rel.name == "cli.py":
            continue
        layer = rel.parts[0]
        allowed = ALLOWED.get(layer)
        if allowed is None:
            problems.append(f"{rel}: package {layer!r} has no entry in the layer contract")
            continue
        for name in _imports(path):
            parts = name.split(".")
            outside = parts[0] == "dideban" and len(parts) > 1 and parts[1] not in allowed
            if outside and parts[1] in ALLOWED:
                problems.append(f"{rel}: {layer} may not import {name}")
            if layer in NO_TRANSPORT and any(
                name == t or name.startswith(t + ".") for t in TRANSPORTS
            ):
                problems.append(f"{rel}: {layer} may not import transport module {name}")
    return problems


def test_layers_depend_one_way() -> None:
    assert _violations() == []


def test_contract_sees_a_violation(tmp_path: Path) -> None:
    # The checker itself must be able to fail: feed it a file that breaks the contract.
    bad = tmp_path / "bad.py"
    bad.write_text("import socket\nfrom dideban.probe import x\n", encoding="utf-8")
    names = _imports(bad)
    assert "socket" in names and "dideban.probe" in names
