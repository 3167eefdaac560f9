"""Build and tear down the netns lab's namespaces, links, routes, firewall rules and qdiscs.

The builders return command text (for `ip -batch`, `iptables-restore`, `tc -batch`) from a
`Plan`, so what the lab does to the kernel can be read and tested without root; `apply_*`
run them.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from dideban.lab.netns.plan import (
    CENSOR_DOMESTIC_SIDE,
    CENSOR_INET_SIDE,
    CENSOR_PROBE_SIDE,
    COLLECTOR_IP,
    DOMESTIC_ADDR,
    DOMESTIC_PREFIX,
    DOMESTIC_SITE_IP,
    HONEST_RESOLVER,
    INET_ADDR,
    ISP_RESOLVER,
    NAMESPACES,
    NFQUEUE_NUM,
    NS_CENSOR,
    NS_DOMESTIC,
    NS_INET,
    NS_PROBE,
    PREFIX,
    TEST_HELPER_IP,
    Plan,
)
from dideban.model.labnet import LAB_RANGES

RANGES = [str(n) for n in LAB_RANGES]
HOST_LEAK_CHAIN = "DIDEBAN-LEAK"
NETNS_ETC = Path("/etc/netns")


class TopologyError(RuntimeError):
    pass


def run(cmd: list[str], *, stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise TopologyError(f"{' '.join(cmd[:6])}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def in_ns(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


def link_batch(plan: Plan) -> list[tuple[str, str]]:
    """(namespace or "" for the host, `ip -batch` text) creating namespaces, veths and routes."""
    lines = [f"netns add {ns}" for ns in NAMESPACES]
    lines += [
        f"link add dbp-probe netns {NS_PROBE} type veth peer name p0 netns {NS_CENSOR}",
        f"link add dbp-inet netns {NS_INET} type veth peer name i0 netns {NS_CENSOR}",
        f"link add dbp-dom netns {NS_DOMESTIC} type veth peer name d0 netns {NS_CENSOR}",
    ]
    probe = [
        "link set lo up",
        "link set dbp-probe name eth0",
        f"addr add {plan.probe_ip}/32 dev eth0",
        "link set eth0 up",
        f"route add {CENSOR_PROBE_SIDE}/32 dev eth0 scope link",
    ]
    probe += [f"route add {r} via {CENSOR_PROBE_SIDE} dev eth0" for r in RANGES]
    censor = [
        "link set lo up",
        f"addr add {CENSOR_PROBE_SIDE}/32 dev p0",
        f"addr add {CENSOR_INET_SIDE}/30 dev i0",
        f"addr add {CENSOR_DOMESTIC_SIDE}/30 dev d0",
        "link set p0 up",
        "link set i0 up",
        "link set d0 up",
        f"route add {plan.probe_ip}/32 dev p0 scope link",
        f"route add {DOMESTIC_PREFIX} via {DOMESTIC_ADDR} dev d0",
    ]
    censor += [f"route add {r} via {INET_ADDR} dev i0" for r in RANGES]
    # IP null-routing: the router silently discards packets to these addresses.
    censor += [f"route add blackhole {ip}/32" for ip in plan.tcp_timeout_ips]
    inet = [
        "link set lo up",
        "link set dbp-inet name eth0",
        f"addr add {INET_ADDR}/30 dev eth0",
        "link set eth0 up",
    ]
    inet += [
        f"addr add {ip}/32 dev eth0"
        for ip in [*plan.site_ips(), HONEST_RESOLVER, TEST_HELPER_IP, COLLECTOR_IP]
    ]
    inet += [f"route add {r} via {CENSOR_INET_SIDE} dev eth0" for r in RANGES]
    dom = [
        "link set lo up",
        "link set dbp-dom name eth0",
        f"addr add {DOMESTIC_ADDR}/30 dev eth0",
        f"addr add {ISP_RESOLVER}/32 dev eth0",
        f"addr add {DOMESTIC_SITE_IP}/32 dev eth0",
        "link set eth0 up",
    ]
    dom += [f"route add {r} via {CENSOR_DOMESTIC_SIDE} dev eth0" for r in RANGES]
    batches = [("", "\n".join(lines) + "\n")]
    for ns, cmds in ((NS_PROBE, probe), (NS_CENSOR, censor), (NS_INET, inet), (NS_DOMESTIC, dom)):
        batches.append((ns, "\n".join(cmds) + "\n"))
    return batches


def shutdown_rules(plan: Plan) -> list[str]:
    """Rules of the `dideban-shutdown` chain for the plan's shutdown mode."""
    if plan.shutdown == "blackhole":
        # International gateway cut: nothing crosses i0; the domestic side stays reachable.
        return ["-A dideban-shutdown -o i0 -j DROP", "-A dideban-shutdown -i i0 -j DROP"]
    if plan.shutdown == "curfew":
        window = f"-m time --timestart {plan.curfew_start} --timestop {plan.curfew_stop}"
        return [
            f"-A dideban-shutdown -o i0 {window} -j DROP",
            f"-A dideban-shutdown -i i0 {window} -j DROP",
        ]
    return []


def censor_rules(plan: Plan) -> str:
    """`iptables-restore` input for the censor namespace's filter table."""
    out = [
        "*filter",
        ":INPUT ACCEPT [0:0]",
        ":FORWARD ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":dideban-shutdown - [0:0]",
        ":dideban-leak - [0:0]",
        # Anything the censor would forward or send outside the lab ranges is counted and
        # dropped: the no-leak test reads these counters.
        "-A FORWARD -j dideban-leak",
        "-A OUTPUT -j dideban-leak",
    ]
    out += [f"-A dideban-leak -d {r} -j RETURN" for r in RANGES]
    out += ["-A dideban-leak -o lo -j RETURN", "-A dideban-leak -j DROP"]
    out += ["-A FORWARD -j dideban-shutdown", *shutdown_rules(plan)]
    # QUIC: blanket drop of UDP/443.
    out.append("-A FORWARD -i p0 -p udp --dport 443 -j DROP")
    out += [
        f"-A FORWARD -i p0 -d {ip}/32 -p tcp -j REJECT --reject-with tcp-reset"
        for ip in plan.tcp_reset_ips
    ]
    queue = f"-j NFQUEUE --queue-num {NFQUEUE_NUM} --queue-bypass"
    out.append(f"-A FORWARD -i p0 -p tcp -m multiport --dports 53,80,443 {queue}")
    out.append(f"-A FORWARD -i p0 -p udp --dport 53 {queue}")
    out.append("COMMIT")
    return "\n".join(out) + "\n"


def inet_rules(plan: Plan) -> str:
    """Sites that are down everywhere (`server: refused`) answer SYNs with RST."""
    out = ["*filter", ":INPUT ACCEPT [0:0]"]
    out += [
        f"-A INPUT -d {s.ip}/32 -p tcp -j REJECT --reject-with tcp-reset"
        for s in plan.sites
        if s.server == "refused"
    ]
    out.append("COMMIT")
    return "\n".join(out) + "\n"


def tc_batch(plan: Plan) -> str:
    """htb classes capping each throttled site in both directions (no netem on this kernel)."""
    throttled = plan.throttled()
    if not throttled:
        return ""
    lines = []
    for dev, match in (("p0", "src"), ("i0", "dst")):
        lines += [
            f"qdisc add dev {dev} root handle 1: htb default 1",
            f"class add dev {dev} parent 1: classid 1:1 htb rate 10gbit",
        ]
        for i, (ip, kbps) in enumerate(sorted(throttled.items()), start=16):
            cls = f"1:{i:x}"
            lines += [
                f"class add dev {dev} parent 1: classid {cls} htb rate {kbps}kbit ceil {kbps}kbit",
                f"filter add dev {dev} parent 1: protocol ip prio 1 u32 match ip {match} {ip}/32 flowid {cls}",
            ]
    return "\n".join(lines) + "\n"


def host_leak_rules() -> list[list[str]]:
    """Host-side guard and counters for packets from or to the lab ranges outside loopback.

    The host's default route would carry a lab address out of the machine (198.18.0.0/15 is
    not routed locally), e.g. if a direct lab view were used outside the probe namespace.
    While the lab is up these rules refuse such packets locally and count them.
    """
    rules = []
    for r in RANGES:
        for side in ("-s", "-d"):
            # Name the offender in the kernel log (dmesg), rate-limited.
            rules.append(
                ["-A", HOST_LEAK_CHAIN, "!", "-o", "lo", side, r, "-m", "limit", "--limit",
                 "10/min", "-j", "LOG", "--log-prefix", "dideban-leak: "]
            )  # fmt: skip
        rules.append(["-A", HOST_LEAK_CHAIN, "!", "-o", "lo", "-s", r, "-j", "DROP"])
        rules.append(
            ["-A", HOST_LEAK_CHAIN, "!", "-o", "lo", "-d", r, "-j", "REJECT",
             "--reject-with", "icmp-net-unreachable"]
        )  # fmt: skip
    return rules


def resolv_confs() -> dict[str, str]:
    opts = "options timeout:2 attempts:1\n"
    return {
        NS_PROBE: f"nameserver {ISP_RESOLVER}\n{opts}",
        NS_INET: f"nameserver {HONEST_RESOLVER}\n{opts}",
        NS_DOMESTIC: f"nameserver {ISP_RESOLVER}\n{opts}",
    }


# ---------------------------------------------------------------------------------------------
# Applying


def build(plan: Plan) -> None:
    for ns, text in link_batch(plan):
        run(["ip", *(["-n", ns] if ns else []), "-batch", "-"], stdin=text)
    run(in_ns(NS_CENSOR, "sysctl", "-qw", "net.ipv4.ip_forward=1"))
    run(in_ns(NS_CENSOR, "iptables-restore"), stdin=censor_rules(plan))
    run(in_ns(NS_INET, "iptables-restore"), stdin=inet_rules(plan))
    tc = tc_batch(plan)
    if tc:
        run(in_ns(NS_CENSOR, "tc", "-batch", "-"), stdin=tc)
    for ns, text in resolv_confs().items():
        d = NETNS_ETC / ns
        d.mkdir(parents=True, exist_ok=True)
        (d / "resolv.conf").write_text(text, encoding="utf-8")
    add_host_leak_counters()


def set_shutdown(plan: Plan) -> None:
    """Replace the shutdown chain's rules (run time, no restart)."""
    run(in_ns(NS_CENSOR, "iptables", "-F", "dideban-shutdown"))
    for rule in shutdown_rules(plan):
        run(in_ns(NS_CENSOR, "iptables", *rule.split()))


def add_host_leak_counters() -> None:
    remove_host_leak_counters()
    run(["iptables", "-N", HOST_LEAK_CHAIN])
    for rule in host_leak_rules():
        run(["iptables", *rule])
    for hook in ("OUTPUT", "FORWARD"):
        run(["iptables", "-I", hook, "-j", HOST_LEAK_CHAIN])


def _ok(cmd: list[str]) -> bool:
    return subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0


def remove_host_leak_counters() -> bool:
    if not _ok(["iptables", "-S", HOST_LEAK_CHAIN]):
        return False
    for hook in ("OUTPUT", "FORWARD"):
        for _ in range(16):
            if not _ok(["iptables", "-D", hook, "-j", HOST_LEAK_CHAIN]):
                break
    _ok(["iptables", "-F", HOST_LEAK_CHAIN])
    _ok(["iptables", "-X", HOST_LEAK_CHAIN])
    return True


def host_leak_count() -> int:
    """Packets counted by the host-side leak chain (0 when the lab leaked nothing)."""
    text = run(["iptables", "-L", HOST_LEAK_CHAIN, "-v", "-x", "-n"], check=False)
    total = 0
    for line in text.splitlines()[2:]:
        fields = line.split()
        if len(fields) > 2 and fields[0].isdigit() and fields[2] in ("DROP", "REJECT"):
            total += int(fields[0])
    return total


def chain_packets(ns: str, chain: str) -> int:
    """Packets that reached the final rule of `chain` in namespace `ns` (iptables -L -v -x)."""
    text = run(in_ns(ns, "iptables", "-L", chain, "-v", "-x", "-n"))
    rows = [line.split() for line in text.splitlines()[2:] if line.strip()]
    return sum(int(r[0]) for r in rows if r and r[2] == "DROP")


def lab_namespaces() -> list[str]:
    out = run(["ip", "netns", "list"], check=False)
    return [m for m in re.findall(r"^(\S+)", out, re.MULTILINE) if m.startswith(PREFIX)]


def namespace_pids(ns: str) -> list[int]:
    out = run(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in out.split() if x.isdigit()]


def delete_namespaces() -> list[str]:
    removed = []
    for ns in lab_namespaces():
        run(["ip", "netns", "del", ns], check=False)
        removed.append(f"namespace {ns}")
    for d in sorted(NETNS_ETC.glob(PREFIX + "*")) if NETNS_ETC.exists() else []:
        for f in d.iterdir():
            f.unlink()
        d.rmdir()
        removed.append(f"dir {d}")
    return removed
