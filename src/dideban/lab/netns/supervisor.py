"""Supervisor of the netns lab's processes: starts them, restarts them, keeps their pidfiles.

`python -m dideban.lab.netns.supervisor STATE_DIR` runs detached from `up()`. Each child runs
inside its namespace through `ip netns exec` (which execs, so the pid is the child's own) and
has a pidfile STATE_DIR/pids/NAME.pid, so `down()` can stop everything even when this
supervisor was killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dideban.lab.netns.plan import (
    COLLECTOR_IP,
    COLLECTOR_PORT,
    NS_CENSOR,
    NS_DOMESTIC,
    NS_INET,
    TEST_HELPER_IP,
    TEST_HELPER_PORT,
)

MAX_RESTARTS = 5


def commands(
    state: Path, *, with_test_helper: bool, with_collector: bool = False
) -> dict[str, list[str]]:
    py = sys.executable
    cmds = {
        "censor": ["ip", "netns", "exec", NS_CENSOR, py, "-m", "dideban.lab.netns.censor", str(state)],
        "inet": ["ip", "netns", "exec", NS_INET, py, "-m", "dideban.lab.netns.services", "inet", str(state)],
        "domestic": [
            "ip", "netns", "exec", NS_DOMESTIC, py, "-m", "dideban.lab.netns.services", "domestic", str(state),
        ],
    }  # fmt: skip
    if with_test_helper:
        cmds["testhelper"] = [
            "ip", "netns", "exec", NS_INET, py, "-m", "dideban", "testhelper",
            "--host", TEST_HELPER_IP, "--port", str(TEST_HELPER_PORT), "--lab-state", str(state / "lab.json"),
        ]  # fmt: skip
    if with_collector:
        cmds["collector"] = [
            "ip", "netns", "exec", NS_INET, py, "-m", "dideban", "collector",
            "--host", COLLECTOR_IP, "--port", str(COLLECTOR_PORT),
            "--data-dir", str(state / "collector"), "--seal-after", "1",
            *(["--test-helper", f"http://{TEST_HELPER_IP}:{TEST_HELPER_PORT}"] if with_test_helper else []),
        ]  # fmt: skip
    return cmds


def _start(name: str, cmd: list[str], state: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, HOME=str(state), XDG_CACHE_HOME=str(state / "cache"))
    with (state / "logs" / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    _write_pid(state / "pids" / f"{name}.pid", proc.pid)
    return proc


def _write_pid(path: Path, pid: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n", encoding="utf-8")
    tmp.replace(path)  # atomic: a reader never sees a half-written pidfile


def supervise(state: Path, with_test_helper: bool, with_collector: bool = False) -> None:
    (state / "logs").mkdir(exist_ok=True)
    (state / "pids").mkdir(exist_ok=True)
    _write_pid(state / "pids" / "supervisor.pid", os.getpid())
    cmds = commands(state, with_test_helper=with_test_helper, with_collector=with_collector)
    procs = {name: _start(name, cmd, state) for name, cmd in cmds.items()}
    restarts = dict.fromkeys(cmds, 0)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        time.sleep(0.2)
        for name, proc in list(procs.items()):
            if proc.poll() is None or stopping:
                continue
            if restarts[name] >= MAX_RESTARTS:
                continue
            restarts[name] += 1
            time.sleep(0.2 * restarts[name])
            procs[name] = _start(name, cmds[name], state)
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 3
    for name, proc in procs.items():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(2)
        (state / "pids" / f"{name}.pid").unlink(missing_ok=True)
    (state / "pids" / "supervisor.pid").unlink(missing_ok=True)
    # Withdraw the lab's announcement (see `up`) if it is still ours.
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        registered = Path((state / "registered").read_text(encoding="utf-8"))
        if json.loads(registered.read_text(encoding="utf-8"))["pid"] == os.getpid():
            registered.unlink()


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(
            "usage: python -m dideban.lab.netns.supervisor STATE_DIR [--test-helper] [--collector]"
            " [--daemon]"
        )
    if "--daemon" in argv[1:] and os.fork() > 0:
        # The caller waits for this parent; the supervisor is re-parented to init, so the
        # caller never holds a child process it would have to reap.
        os._exit(0)
    supervise(Path(argv[0]), "--test-helper" in argv[1:], "--collector" in argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
