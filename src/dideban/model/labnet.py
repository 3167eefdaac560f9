"""What a running censorship lab tells its users (probe, test helper, collector).

The lab's "Internet" uses documentation addresses (198.18.0.0/15, 198.51.100.0/24,
203.0.113.0/24) as the public addresses of its sites. In the userspace lab nothing really has
those addresses: a `LabView` maps each destination `ip:port` the lab knows to a loopback
endpoint (`127.0.0.1:port`) that plays it. The probe's view goes through the censor; the
control view (used by the test helper) reaches the sites directly. A destination that is not in
a view is never dialled: the lab dialer records `LAB_DESTINATION_REFUSED` instead. This is how a
lab DNS answer such as 10.10.34.35 stays a value and never becomes a packet.

The netns lab (real packets) has no routes table: there the sites really own their addresses
inside network namespaces, and `routes` is empty with `direct=True`.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field
from typing import Any

LAB_RANGES: tuple[ipaddress.IPv4Network, ...] = (
    ipaddress.IPv4Network("198.18.0.0/15"),
    ipaddress.IPv4Network("198.51.100.0/24"),
    ipaddress.IPv4Network("203.0.113.0/24"),
)


def is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def is_lab_address(ip: str) -> bool:
    """True for the documentation ranges the lab may use as its hosts' real addresses."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in LAB_RANGES)


@dataclass(frozen=True)
class LabView:
    """One side's view of the lab network."""

    # "ip:port" -> "127.0.0.1:port" (userspace lab). IPv6 keys use "[ip]:port".
    routes: dict[str, str] = field(default_factory=dict)
    # The DNS resolver this side uses, "127.0.0.1:port" (UDP and TCP).
    resolver: str = ""
    # netns lab: destinations are real lab addresses, dial them as they are (lab ranges only).
    direct: bool = False

    def route(self, ip: str, port: int) -> str | None:
        """The loopback endpoint playing `ip:port`, or None when the lab refuses it."""
        key = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        target = self.routes.get(key)
        if target is not None:
            return target
        if self.direct and is_lab_address(ip):
            return key
        return None


@dataclass(frozen=True)
class LabNetwork:
    """A running lab, as written to its state file and handed to the probe and helper."""

    name: str
    probe_cc: str
    probe_asn: str
    probe_network_name: str
    # The address the lab's sites see as the probe's public address (a documentation
    # address). The probe must scrub it everywhere, as it would its real public address.
    probe_public_ip: str
    probe_view: LabView
    control_view: LabView
    # PEM of the lab CA that signs every lab site certificate.
    ca_pem: str
    test_helper_url: str = ""
    collector_url: str = ""
    # Short timeouts keep a lab run fast; the probe uses them instead of its defaults.
    timeouts: dict[str, float] = field(default_factory=dict)
    pid: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabNetwork:
        values = dict(data)
        values["probe_view"] = LabView(**values["probe_view"])
        values["control_view"] = LabView(**values["control_view"])
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> LabNetwork:
        return cls.from_dict(json.loads(text))
