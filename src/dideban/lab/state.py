"""Where a running userspace lab announces itself: `<state dir>/lab/<name>.json`.

The file holds the lab's `LabNetwork` (with the pid of the process running it); it is written
atomically when the lab is up and removed when it stops. `find_running_lab` is how other
commands (`dideban run --lab iran`) reuse a lab started by `dideban lab up`.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from dideban.model.labnet import LabNetwork
from dideban.netx.local import inside_lab_netns


def lab_state_dir() -> Path:
    env = os.environ.get("DIDEBAN_STATE_DIR")
    root = Path(env) if env else Path.home() / ".local" / "state" / "dideban"
    return root / "lab"


def state_path(name: str, state_dir: Path | None = None) -> Path:
    return (state_dir or lab_state_dir()) / f"{name}.json"


def write_state(network: LabNetwork, state_dir: Path | None = None) -> Path:
    path = state_path(network.name, state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(network.to_json(), encoding="utf-8")
    tmp.replace(path)
    return path


def remove_state(network: LabNetwork, state_dir: Path | None = None) -> None:
    """Remove the state file if it is still ours (another lab may have replaced it)."""
    path = state_path(network.name, state_dir)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        if read_state(path).pid == network.pid:
            path.unlink()


def read_state(path: Path) -> LabNetwork:
    return LabNetwork.from_dict(json.loads(path.read_text(encoding="utf-8")))


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_labs(state_dir: Path | None = None) -> list[tuple[Path, LabNetwork | None, bool]]:
    """Every state file: (path, its network or None if unreadable, whether its pid is alive)."""
    folder = state_dir or lab_state_dir()
    out: list[tuple[Path, LabNetwork | None, bool]] = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            net = read_state(path)
        except (OSError, ValueError, KeyError, TypeError):
            out.append((path, None, False))
            continue
        out.append((path, net, pid_alive(net.pid)))
    return out


def find_running_lab(name: str, state_dir: Path | None = None) -> LabNetwork | None:
    """The LabNetwork of a running userspace lab called `name`, or None (no state file, an
    unreadable one, or its process is gone)."""
    path = state_path(name, state_dir)
    if "/" in name or not path.exists():
        return None
    try:
        net = read_state(path)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if net.probe_view.direct and not inside_lab_netns():
        # A netns lab is only reachable from inside its namespaces; from here a run must
        # start a userspace lab of its own instead of dialling the netns lab's addresses.
        return None
    return net if pid_alive(net.pid) else None
