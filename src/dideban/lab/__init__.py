"""The censorship lab: scenarios as data (`scenario.py`), the userspace lab on loopback
(`userspace.py`), scenario generation from test lists (`generate.py`) and the netns lab
(`netns/`, root)."""

from dideban.lab.generate import DEFAULT_MIX, generate_scenario, scenario_to_yaml
from dideban.lab.state import find_running_lab, lab_state_dir
from dideban.lab.userspace import UserspaceLab, start_lab_in_thread

__all__ = [
    "DEFAULT_MIX",
    "UserspaceLab",
    "find_running_lab",
    "generate_scenario",
    "lab_state_dir",
    "scenario_to_yaml",
    "start_lab_in_thread",
]
