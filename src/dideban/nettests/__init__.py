"""Network tests (nettests) and the one mechanism by which they register.

A nettest is a name, a version, the kind of input it takes and an async `run` function that
measures one input and returns OONI `test_keys`. The probe finds nettests only through this
registry; built-in nettests register themselves when `load_builtin()` imports their module.
"""

from __future__ import annotations

import contextvars
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


# The probe bounds how many measurements do network work at once. Some of a measurement's time
# is passive: web_connectivity keeps a UDP socket open >= 500 ms after the first DNS reply to
# catch injected answers racing the real one. A nettest calls `passive_from_here()` when only
# such listening remains, and the runner gives its slot to the next measurement; the
# measurement still completes (and is recorded) once the listening is over.
_PASSIVE_HOOK: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "dideban_passive_hook", default=None
)


def passive_from_here() -> None:
    """Tell the runner this measurement does no more active network work (see above)."""
    hook = _PASSIVE_HOOK.get()
    if hook is not None:
        hook()


def set_passive_hook(
    hook: Callable[[], None] | None,
) -> contextvars.Token[Callable[[], None] | None]:
    return _PASSIVE_HOOK.set(hook)


def reset_passive_hook(token: contextvars.Token[Callable[[], None] | None]) -> None:
    _PASSIVE_HOOK.reset(token)


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
