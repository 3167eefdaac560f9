"""Shared helpers for the netns lab tests: root check, and running code inside a namespace.

(A plain module, not conftest.py: `from conftest import` breaks when another test folder's
conftest was imported first.)

Code runs inside a lab namespace from this process through a worker thread that called
setns(2): sockets that thread creates live in the namespace (the OS resolver does not: it
reads the host's /etc/resolv.conf, so OS-resolver tests use `ip netns exec`).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
HERE = Path(__file__).parent


def netns_unavailable() -> str | None:
    """Why the netns tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables, NFQUEUE)"
    for tool in ("ip", "iptables", "tc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "`ip netns` is unavailable"
    try:
        import netfilterqueue  # noqa: F401
    except ImportError:
        return "NetfilterQueue is not installed (pip install -e '.[dev]')"
    return None


requires_netns = pytest.mark.skipif(
    netns_unavailable() is not None, reason=str(netns_unavailable())
)


class InNamespace:
    """Run callables in a thread that lives in network namespace `name`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, initializer=self._enter)

    def _enter(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {self.name}")
        finally:
            os.close(fd)

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 30) -> T:
        return self._pool.submit(fn, *args).result(timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def ns_exec(ns: str, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout
    )
