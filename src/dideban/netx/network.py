"""How to reach the world: dialer, system resolver, TLS trust and timeouts, in one `Network`.

Without a lab, `make_network()` gives real sockets and getaddrinfo. With a lab
(`dideban.model.labnet.LabNetwork`) the *lab dialer* maps every destination `ip:port` through
the side's `LabView.route()`. A destination it does not map is never dialled (no socket is
created): the connect fails with `failures.LAB_DESTINATION_REFUSED`. It also refuses a mapped
target that is not loopback (or, for `direct` netns views, not a lab address). Because a
userspace lab cannot change getaddrinfo, the lab's "system resolver" is a stub that asks the
view's resolver over UDP; a `direct` view (netns lab) uses the real getaddrinfo.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from dideban.model import failures
from dideban.model.labnet import LabNetwork, LabView, is_lab_address, is_loopback
from dideban.netx.clock import MONOTONIC, Clock
from dideban.netx.errors import NetxFailure, classify
from dideban.netx.local import inside_lab_netns


@dataclass(frozen=True)
class Timeouts:
    """Per-operation timeouts in seconds. `udp_listen_after_first`: how long DNS over UDP keeps
    listening after the first reply, to catch the real answer racing injected ones."""

    dns: float = 5.0
    connect: float = 10.0
    tls: float = 10.0
    http: float = 15.0
    udp_listen_after_first: float = 0.5

    @classmethod
    def from_mapping(cls, values: Mapping[str, float] | None) -> Timeouts:
        """Timeouts from a dict such as `LabNetwork.timeouts`; unknown keys are ignored."""
        if not values:
            return cls()
        known = {k: float(v) for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def split_hostport(endpoint: str) -> tuple[str, int]:
    """`"1.2.3.4:80"` / `"[::1]:53"` -> (host, port). Raises ValueError on bad input: the port
    is 1 to 5 ASCII digits up to 65535 (int() alone would take " 80", "+80", "8_0", "٤٤٣"
    and 99999, which a socket then refuses with another error)."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host:
        raise ValueError(f"not host:port: {endpoint!r}")
    if not (0 < len(port) <= 5 and port.isascii() and port.isdigit() and int(port) <= 65535):
        raise ValueError(f"not a port: {endpoint!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def join_hostport(host: str, port: int) -> str:
    """(host, port) -> `"host:port"`, brackets around IPv6 literals."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_ip(text: str) -> bool:
    # Fast path: most host names start with a letter (ipaddress raising is slow).
    if not text or not (text[0].isdigit() or ":" in text):
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class Conn:
    """An open TCP (maybe TLS) connection: asyncio streams plus the peer `address` (`ip:port`
    of the destination asked for, never the lab's loopback stand-in). `broken` is set by netx
    after a failed operation: such a connection is aborted, not closed gracefully."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.address = address
        self.broken = False

    async def close(self) -> None:
        """Close, never raising and never waiting long: a broken connection (or one whose
        peer does not finish the close within a second) is aborted."""
        transport = self.writer.transport
        if self.broken:
            transport.abort()
            return
        try:
            self.writer.close()
            async with asyncio.timeout(1.0):
                await self.writer.wait_closed()
        except (OSError, TimeoutError, ssl.SSLError):
            transport.abort()


class Dialer(Protocol):
    async def dial(self, ip: str, port: int, timeout: float) -> Conn:
        """A TCP connection to `ip:port`; raises `NetxFailure` (OONI string) on failure."""
        ...


async def _open(host: str, port: int, address: str, timeout: float) -> Conn:
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    except Exception as exc:
        raise NetxFailure(classify(exc)) from exc
    return Conn(reader, writer, address)


class SocketDialer:
    """Real sockets: dials `ip:port` as given."""

    async def dial(self, ip: str, port: int, timeout: float) -> Conn:
        return await _open(ip, port, join_hostport(ip, port), timeout)


class LabDialer:
    """Dials only what the lab view maps, and only to loopback (or lab addresses when the
    view is `direct`). Everything else fails with `LAB_DESTINATION_REFUSED`, no socket made."""

    def __init__(self, view: LabView) -> None:
        self.view = view

    def target(self, ip: str, port: int) -> tuple[str, int]:
        """The endpoint that plays `ip:port`; raises `NetxFailure` when refused."""
        mapped = self.view.route(ip, port)
        if mapped is None:
            raise NetxFailure(failures.LAB_DESTINATION_REFUSED)
        try:
            host, mport = split_hostport(mapped)
        except ValueError:
            raise NetxFailure(failures.LAB_DESTINATION_REFUSED) from None
        allowed = is_loopback(host) or (self.view.direct and is_lab_address(host))
        if not allowed:
            raise NetxFailure(failures.LAB_DESTINATION_REFUSED)
        return host, mport

    async def dial(self, ip: str, port: int, timeout: float) -> Conn:
        host, mport = self.target(ip, port)
        return await _open(host, mport, join_hostport(ip, port), timeout)


class LoopbackOrDialer:
    """For API calls in a lab (test helper, collector on 127.0.0.1): loopback destinations
    are dialled directly, everything else goes through the lab dialer."""

    def __init__(self, inner: Dialer) -> None:
        self.inner = inner

    async def dial(self, ip: str, port: int, timeout: float) -> Conn:
        if is_loopback(ip):
            return await _open(ip, port, join_hostport(ip, port), timeout)
        return await self.inner.dial(ip, port, timeout)


def is_global_unicast(ip: str) -> bool:
    """A public unicast address (not private, loopback, link-local, reserved, documentation,
    shared or multicast)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return addr.is_global and not addr.is_multicast


class GlobalOnlyDialer:
    """Refuses every destination that is not a global unicast address (before any socket), so
    a server dialling on behalf of others (the test helper) cannot be pointed at loopback or a
    private network, by the request itself, by DNS or by a redirect."""

    def __init__(self, inner: Dialer, failure: str) -> None:
        self.inner = inner
        self.failure = failure

    async def dial(self, ip: str, port: int, timeout: float) -> Conn:
        if not is_global_unicast(ip):
            raise NetxFailure(self.failure)
        return await self.inner.dial(ip, port, timeout)


class Resolver(Protocol):
    async def lookup(self, host: str, timeout: float) -> list[str]:
        """The host's addresses (IPv4 first, as strings); raises `NetxFailure`."""
        ...


_GETADDRINFO_POOL: concurrent.futures.ThreadPoolExecutor | None = None
# getaddrinfo blocks a thread until the C library gives up (for a censored name that never
# answers: its whole timeout). asyncio's default executor has min(32, cores + 4) threads, so a
# few silent names starved every other lookup and turned working sites into false "dns"
# verdicts. Lookups get a pool of their own, as wide as any sane probe concurrency.
GETADDRINFO_THREADS = 128


def _getaddrinfo_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _GETADDRINFO_POOL
    if _GETADDRINFO_POOL is None:
        _GETADDRINFO_POOL = concurrent.futures.ThreadPoolExecutor(
            GETADDRINFO_THREADS, thread_name_prefix="dideban-getaddrinfo"
        )
    return _GETADDRINFO_POOL


class GetaddrinfoResolver:
    """The system resolver: getaddrinfo, run in a thread by asyncio."""

    async def lookup(self, host: str, timeout: float) -> list[str]:
        if is_ip(host):
            return [host]
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.run_in_executor(
                    _getaddrinfo_pool(), socket.getaddrinfo, host, None, 0, socket.SOCK_STREAM
                ),
                timeout,
            )
        except Exception as exc:
            raise NetxFailure(classify(exc)) from exc
        addrs: list[str] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            ip = str(sockaddr[0])
            if ip not in addrs:
                addrs.append(ip)
        if not addrs:
            raise NetxFailure(failures.DNS_NO_ANSWER)
        return sorted(addrs, key=lambda a: ":" in a)


@dataclass
class Network:
    """Everything a measurement needs to reach the world. `lab` is set in lab mode; `side`
    says which view of the lab this is. `extra_ca_pem` is trusted in addition to system CAs."""

    dialer: Dialer
    resolver: Resolver
    api_dialer: Dialer
    timeouts: Timeouts = field(default_factory=Timeouts)
    extra_ca_pem: str = ""
    clock: Clock = MONOTONIC
    lab: LabNetwork | None = None
    side: Literal["probe", "control"] = "probe"
    # The DNS resolver this network uses ("ip:port"), "" when that is the OS's business.
    resolver_address: str = ""
    _contexts: dict[tuple[bool, tuple[str, ...]], ssl.SSLContext] = field(
        default_factory=dict, repr=False
    )

    @property
    def view(self) -> LabView | None:
        """The lab view of this side, or None outside a lab."""
        if self.lab is None:
            return None
        return self.lab.probe_view if self.side == "probe" else self.lab.control_view

    def udp_target(self, endpoint: str) -> tuple[str, int]:
        """Where to send UDP for the resolver `endpoint` ("ip:port"). In a lab only the view's
        own resolver, mapped routes or lab addresses of a direct view are allowed; anything
        else raises `NetxFailure(LAB_DESTINATION_REFUSED)` without a socket."""
        try:
            host, port = split_hostport(endpoint)
        except ValueError:
            raise NetxFailure(
                failures.unknown_failure(f"bad resolver address {endpoint!r}")
            ) from None
        view = self.view
        if view is None:
            return host, port
        if view.resolver and endpoint == view.resolver and is_loopback(host):
            return host, port
        return LabDialer(view).target(host, port)

    def tls_context(self, *, verify: bool = True, alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
        """A client TLS context trusting system CAs plus `extra_ca_pem` (cached per args)."""
        key = (verify, alpn)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = ssl.create_default_context()
            if self.extra_ca_pem:
                ctx.load_verify_locations(cadata=self.extra_ca_pem)
            if not verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if alpn:
                ctx.set_alpn_protocols(list(alpn))
            self._contexts[key] = ctx
        return ctx


def make_network(
    lab: LabNetwork | None = None,
    side: Literal["probe", "control"] = "probe",
    timeouts: Timeouts | Mapping[str, float] | None = None,
    *,
    extra_ca_pem: str = "",
    clock: Clock = MONOTONIC,
) -> Network:
    """The `Network` for real use (lab=None: real sockets + getaddrinfo) or for one side of a
    lab (lab dialer, stub resolver asking the view's resolver, the lab CA trusted)."""
    t = timeouts if isinstance(timeouts, Timeouts) else Timeouts.from_mapping(timeouts)
    if lab is None:
        dialer = SocketDialer()
        return Network(
            dialer=dialer,
            resolver=GetaddrinfoResolver(),
            api_dialer=dialer,
            timeouts=t,
            extra_ca_pem=extra_ca_pem,
            clock=clock,
            side=side,
        )
    view = lab.probe_view if side == "probe" else lab.control_view
    if view.direct and not inside_lab_netns():
        # A netns lab's addresses exist only inside its namespaces; from anywhere else they
        # would follow the host's default route off the machine. Refuse before any socket.
        raise ValueError(
            f"lab {lab.name!r} runs in network namespaces: measure it from inside them "
            "(ip netns exec dideban-probe dideban run websites --lab-state FILE)"
        )
    lab_dialer = LabDialer(view)
    network = Network(
        dialer=lab_dialer,
        resolver=GetaddrinfoResolver(),
        api_dialer=LoopbackOrDialer(lab_dialer),
        timeouts=t,
        extra_ca_pem=(lab.ca_pem + "\n" + extra_ca_pem).strip(),
        clock=clock,
        lab=lab,
        side=side,
        resolver_address=view.resolver,
    )
    if not view.direct:
        from dideban.netx.dns import StubResolver

        network.resolver = StubResolver(network, view.resolver)
    return network
