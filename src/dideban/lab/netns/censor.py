"""The on-path censor's userspace part: an NFQUEUE handler that reads, drops and injects.

iptables in the censor namespace queues the probe side's client packets to TCP 53/80/443 and
UDP 53 (`-j NFQUEUE --queue-num N --queue-bypass`). For each packet `Censor.decide` returns
whether to let it through and which packets to inject (RSTs, an HTTP blockpage, a forged DNS
reply); the daemon sends those through a raw socket (`SOCK_RAW, IPPROTO_RAW`) before giving
its verdict, so a forgery always beats the packet it answers.

`Censor` is pure (clock injected) and tested without sockets; `main` is the thin I/O loop:
`python -m dideban.lab.netns.censor STATE_DIR` (reloads STATE_DIR/plan.json on SIGHUP).
"""

from __future__ import annotations

import json
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.rdatatype
import dns.rrset

from dideban.lab.netns import packets
from dideban.lab.netns.plan import NFQUEUE_NUM, CensorPlan, Plan, matches

FILTERED_PORTS = frozenset({53, 80, 443})
# How long an idle flow is remembered.
FLOW_IDLE = 300.0


def _offends(data: bytes) -> bool:
    """Long enough to judge (HTTP's fingerprint needs 8 bytes) and not an allowed protocol."""
    return len(data) >= 8 and not packets.looks_like_protocol(data)


@dataclass
class Decision:
    accept: bool
    inject: list[bytes] = field(default_factory=list)
    reason: str = ""


@dataclass
class _Flow:
    start: float
    last: float
    data_packets: int = 0
    censored: bool = False
    # Protocol filter: "pending" until the first data packets are judged, then "allowed".
    filter_state: str = "pending"
    filter_bytes: bytes = b""


class Censor:
    """Per-packet censorship decisions over client -> server packets.

    The protocol filter follows Bock et al. (FOCI 2020, "Detecting and Evading
    Censorship-in-Depth: A Case Study of Iran's Protocol Filter"): on TCP ports 53/80/443 it
    looks at the first two data packets of a flow from the client, together. If they do not
    look like DNS, HTTP or TLS, every later packet of the flow is dropped and the destination
    (client, server, port) is blocked for `protocol_filter_window` seconds (60 in Iran): data
    packets of any flow to it are dropped, and each new non-conforming flow to it restarts the
    timer. The handshake of a new flow still completes, so a blocked HTTPS site shows up as
    a TLS handshake timeout.
    """

    def __init__(self, plan: CensorPlan, clock: Callable[[], float] = time.monotonic) -> None:
        self.plan = plan
        self.clock = clock
        self.flows: dict[tuple[str, int, str, int], _Flow] = {}
        self.blocked: dict[tuple[str, str, int], float] = {}
        self._last_gc = clock()

    def reload(self, plan: CensorPlan) -> None:
        self.plan = plan
        if plan.protocol_filter_window <= 0:
            self.blocked.clear()

    def decide(self, raw: bytes) -> Decision:
        pkt = packets.parse_ipv4(raw)
        if pkt is None:
            return Decision(True)
        now = self.clock()
        self._gc(now)
        if pkt.proto == packets.PROTO_UDP:
            return self._udp(pkt)
        return self._tcp(pkt, now)

    def _gc(self, now: float) -> None:
        if now - self._last_gc < 10:
            return
        self._last_gc = now
        self.flows = {k: f for k, f in self.flows.items() if now - f.last < FLOW_IDLE}
        self.blocked = {k: t for k, t in self.blocked.items() if t > now}

    def _udp(self, pkt: packets.Packet) -> Decision:
        if pkt.dport != 53 or not self.plan.dns_inject:
            return Decision(True)
        try:
            query = dns.message.from_wire(pkt.payload)
        except Exception:
            return Decision(True)
        if not query.question:
            return Decision(True)
        q = query.question[0]
        name = q.name.to_text(omit_final_dot=True).lower()
        forged_ip = next((ip for d, ip in self.plan.dns_inject.items() if matches(name, [d])), None)
        if forged_ip is None:
            return Decision(True)
        reply = dns.message.make_response(query)
        if q.rdtype == dns.rdatatype.A:
            reply.answer.append(dns.rrset.from_text(q.name, 60, "IN", "A", forged_ip))
        forged = packets.build_udp(pkt.dst, pkt.src, pkt.dport, pkt.sport, reply.to_wire())
        # Let the query through: the true answer arrives later and loses the race.
        return Decision(True, [forged], "dns_inject")

    def _tcp(self, pkt: packets.Packet, now: float) -> Decision:
        plan = self.plan
        flow = self.flows.get(pkt.flow)
        if flow is None or (pkt.flags & packets.TCP_SYN and not pkt.flags & packets.TCP_ACK):
            flow = self.flows[pkt.flow] = _Flow(start=now, last=now)
        flow.last = now
        if flow.censored:
            return Decision(False, reason="censored_flow")
        if (
            plan.reset_after > 0
            and now - flow.start >= plan.reset_after
            and pkt.flags & packets.TCP_ACK
        ):
            flow.censored = True
            return Decision(False, list(packets.resets_for(pkt)), "reset_after")
        if not pkt.payload:
            return Decision(True)
        flow.data_packets += 1
        filtered = plan.protocol_filter_window > 0 and pkt.dport in FILTERED_PORTS
        key3 = (pkt.src, pkt.dst, pkt.dport)
        until = self.blocked.get(key3)
        if filtered and until is not None and until > now:
            if flow.data_packets == 1 and _offends(pkt.payload):
                self.blocked[key3] = now + plan.protocol_filter_window
            return Decision(False, reason="protocol_filter")
        if filtered and flow.filter_state == "pending":
            flow.filter_bytes += pkt.payload
            if packets.looks_like_protocol(flow.filter_bytes):
                flow.filter_state = "allowed"
            elif flow.data_packets >= 2 or _offends(flow.filter_bytes):
                self.blocked[key3] = now + plan.protocol_filter_window
                flow.censored = True
                # The packet that gave the flow away still passes; the rest are dropped.
                return Decision(flow.data_packets == 1, reason="protocol_filter")
            else:
                return Decision(True)
        sni = packets.tls_sni(pkt.payload)
        if sni is not None:
            if matches(sni, plan.sni_reset):
                flow.censored = True
                return Decision(False, list(packets.resets_for(pkt)), "sni_reset")
            if matches(sni, plan.sni_drop):
                flow.censored = True
                return Decision(False, reason="sni_drop")
            return Decision(True)
        host = packets.http_host(pkt.payload)
        if host is not None:
            if matches(host, plan.host_reset):
                flow.censored = True
                return Decision(False, list(packets.resets_for(pkt)), "http_reset")
            if matches(host, plan.host_blockpage):
                flow.censored = True
                return Decision(
                    False, list(packets.blockpage_for(pkt, self._blockpage())), "http_blockpage"
                )
        return Decision(True)

    def _blockpage(self) -> bytes:
        body = self.plan.blockpage_html.encode()
        head = (
            "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html; charset=windows-1256\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        return head.encode() + body


# ---------------------------------------------------------------------------------------------
# The daemon


def _load(state: Path) -> CensorPlan:
    data: dict[str, Any] = json.loads((state / "plan.json").read_text(encoding="utf-8"))
    return Plan.from_dict(data).censor


def main(argv: list[str]) -> None:  # pragma: no cover - runs as root in the censor namespace
    from netfilterqueue import NetfilterQueue

    if len(argv) != 1:
        raise SystemExit("usage: python -m dideban.lab.netns.censor STATE_DIR")
    state = Path(argv[0])
    censor = Censor(_load(state))
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    flags = {"reload": False, "stop": False}
    signal.signal(signal.SIGHUP, lambda *_: flags.__setitem__("reload", True))
    signal.signal(signal.SIGTERM, lambda *_: flags.__setitem__("stop", True))
    log = (state / "censor.log").open("a", encoding="utf-8", buffering=1)

    def handle(pkt: Any) -> None:
        try:
            d = censor.decide(pkt.get_payload())
        except Exception as exc:  # never wedge the queue on a parser bug
            log.write(f"error: {exc!r}\n")
            pkt.accept()
            return
        for out in d.inject:
            try:
                raw.sendto(out, (packets.parse_ipv4(out).dst, 0))  # type: ignore[union-attr]
            except OSError as exc:
                log.write(f"inject failed: {exc!r}\n")
        if d.reason:
            log.write(f"{d.reason} {'accept' if d.accept else 'drop'}\n")
        if d.accept:
            pkt.accept()
        else:
            pkt.drop()

    nfq = NetfilterQueue()
    nfq.bind(NFQUEUE_NUM, handle, max_len=4096)
    fd = nfq.get_fd()
    (state / "ready-censor").write_text("ready\n", encoding="utf-8")
    try:
        while not flags["stop"]:
            if flags["reload"]:
                flags["reload"] = False
                censor.reload(_load(state))
                log.write("reloaded\n")
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                nfq.run(block=False)
    finally:
        nfq.unbind()
        raw.close()


if __name__ == "__main__":
    main(sys.argv[1:])
