"""This machine's own addresses, so that the probe can scrub them from every measurement.

A probe behind NAT mostly sees private addresses here, but on a phone tethered to a mobile
network, a VPS or an IPv6 network the interface address IS the public address (and an IPv6
link-local address may embed the MAC). Nothing here sends a packet: IPv4 addresses come from
the SIOCGIFADDR ioctl per interface, IPv6 addresses from /proc/net/if_inet6 (Linux). Elsewhere
the function returns what it can (possibly nothing) rather than failing the run.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import socket
import struct
from pathlib import Path

_SIOCGIFADDR = 0x8915
_IF_INET6 = Path("/proc/net/if_inet6")


def _ipv4_of(sock: socket.socket, name: str) -> str | None:
    try:
        packed = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
    except OSError:
        return None  # the interface has no IPv4 address
    return socket.inet_ntoa(packed[20:24])


def _ipv6_addresses(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 6 and len(fields[0]) == 32:
            found.append(str(ipaddress.IPv6Address(bytes.fromhex(fields[0]))))
    return found


def local_addresses() -> list[str]:
    """Every non-loopback IPv4 and IPv6 address of this machine's interfaces, sorted."""
    found: set[str] = set()
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        names = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # never connected or used
        for name in names:
            addr = _ipv4_of(sock, name)
            if addr is not None:
                found.add(addr)
    with contextlib.suppress(OSError):  # no IPv6 on this machine, or not Linux
        found.update(_ipv6_addresses(_IF_INET6.read_text(encoding="ascii")))
    return sorted(a for a in found if not ipaddress.ip_address(a).is_loopback)


_NETNS_DIR = Path("/run/netns")


def current_netns_name() -> str | None:
    """The name (as `ip netns` gives it) of the network namespace this process is in, or None
    when it is not a named namespace (the host's own, normally)."""
    try:
        here = Path("/proc/self/ns/net").stat()
        candidates = list(_NETNS_DIR.iterdir())
    except OSError:
        return None
    for path in candidates:
        try:
            st = path.stat()
        except OSError:
            continue
        if (st.st_ino, st.st_dev) == (here.st_ino, here.st_dev):
            return path.name
    return None


def inside_lab_netns() -> bool:
    """True inside one of the netns lab's namespaces (named `dideban-...`)."""
    name = current_netns_name()
    return name is not None and name.startswith("dideban-")
