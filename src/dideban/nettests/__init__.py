"""Network tests (nettests) and the one mechanism by which they register.

A nettest is a name, a version, the kind of input it takes and an async `run` function that
measures one input and returns OONI `test_keys`. The probe finds nettests only through this
registry; built-in nettests register themselves when `load_builtin()` imports their module.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

InputKind = Literal["url", "none"]

# run(input, ctx) -> test_keys. `ctx` is the nettest's own context type (it carries the network
# and timeouts); the probe builds it with the nettest's `make_context`.
RunFunction = Callable[[str, Any], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Nettest:
    name: str
    version: str
    input_kind: InputKind
    run: RunFunction
    description: str = ""


class UnknownNettestError(KeyError):
    pass


_REGISTRY: dict[str, Nettest] = {}

BUILTIN_MODULES: tuple[str, ...] = ("dideban.nettests.web_connectivity",)


def register(nettest: Nettest) -> Nettest:
    """Add a nettest; registering the same name twice with a different object is an error."""
    existing = _REGISTRY.get(nettest.name)
    if existing is not None and existing != nettest:
        raise ValueError(f"nettest {nettest.name!r} is already registered")
    _REGISTRY[nettest.name] = nettest
    return nettest


def load_builtin() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def get(name: str) -> Nettest:
    load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNettestError(
            f"no nettest named {name!r}; known: {sorted(_REGISTRY)}"
        ) from None


def all_nettests() -> list[Nettest]:
    load_builtin()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
