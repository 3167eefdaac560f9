"""The netns lab's servers: resolvers and the sites, run inside the lab's namespaces.

`python -m dideban.lab.netns.services ROLE STATE_DIR` runs one role from the plan in STATE_DIR:
  inet      the honest resolver and every site (HTTP :80 and HTTPS :443, virtual hosting by
            Host and SNI, certificates from the lab CA made on first use)
  domestic  the ISP resolver (it applies the censor's DNS techniques) and a domestic site
It writes STATE_DIR/ready-ROLE once it listens.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
import ssl
import sys
from pathlib import Path
from typing import cast

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dideban.lab.netns.plan import (
    DOMESTIC_SITE_IP,
    DOMESTIC_SITE_NAME,
    HONEST_RESOLVER,
    INJECT_RACE_DELAY,
    ISP_RESOLVER,
    Plan,
    SitePlan,
    page_body,
)

# ---------------------------------------------------------------------------------------------
# Lab CA


def make_ca() -> tuple[bytes, bytes]:
    """A fresh lab CA: (certificate PEM, private key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Dideban netns lab CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def make_leaf(ca_cert_pem: bytes, ca_key_pem: bytes, names: list[str], *, expired: bool) -> bytes:
    """PEM of a leaf certificate for `names` followed by its key."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    start, end = (
        (now - dt.timedelta(days=60), now - dt.timedelta(days=30))
        if expired
        else (now - dt.timedelta(days=1), now + dt.timedelta(days=30))
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# ---------------------------------------------------------------------------------------------
# DNS


class Resolver:
    """An authoritative-only resolver for the lab's names.

    `isp=True` applies the ISP techniques of the plan (hijack, NXDOMAIN, timeout, and a late
    true answer for names the on-path injector forges).
    """

    def __init__(self, plan: Plan, *, isp: bool) -> None:
        self.zone: dict[str, SitePlan] = {s.domain: s for s in plan.sites}
        self.isp = isp
        self.rules = plan.isp_dns if isp else {}
        self.extra = {DOMESTIC_SITE_NAME: DOMESTIC_SITE_IP} if isp else {}

    def answer(self, wire: bytes) -> tuple[bytes | None, float]:
        """(reply wire or None to stay silent, delay before sending it)."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None, 0.0
        if not query.question:
            return None, 0.0
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.RA
        q = query.question[0]
        name = q.name.to_text(omit_final_dot=True).lower()
        rule = self.rules.get(name)
        site = self.zone.get(name)
        delay = 0.0
        answer_ip: str | None = None
        if rule is not None and rule[0] == "timeout":
            return None, 0.0
        if rule is not None and rule[0] == "nxdomain":
            reply.set_rcode(dns.rcode.NXDOMAIN)
            return reply.to_wire(), 0.0
        if rule is not None and rule[0] == "hijack":
            answer_ip = rule[1]
        elif site is not None and site.server != "nxdomain":
            answer_ip = site.ip
            if rule is not None and rule[0] == "inject":
                delay = INJECT_RACE_DELAY
        elif name in self.extra:
            answer_ip = self.extra[name]
        if answer_ip is None:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        elif q.rdtype == dns.rdatatype.A:
            reply.answer.append(dns.rrset.from_text(q.name, 60, "IN", "A", answer_ip))
        # AAAA and other types: NOERROR with no answer (the lab is IPv4-only).
        return reply.to_wire(), delay


class _DnsUdp(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        reply, delay = self.resolver.answer(data)
        if reply is None or self.transport is None:
            return
        if delay:
            asyncio.get_running_loop().call_later(delay, self.transport.sendto, reply, addr)
        else:
            self.transport.sendto(reply, addr)


async def _dns_tcp(
    resolver: Resolver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            head = await asyncio.wait_for(reader.readexactly(2), 10)
            wire = await asyncio.wait_for(reader.readexactly(int.from_bytes(head, "big")), 10)
            reply, delay = resolver.answer(wire)
            if reply is None:
                continue
            await asyncio.sleep(delay)
            writer.write(len(reply).to_bytes(2, "big") + reply)
            await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve_dns(resolver: Resolver, host: str) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: _DnsUdp(resolver), local_addr=(host, 53))
    await asyncio.start_server(lambda r, w: _dns_tcp(resolver, r, w), host, 53)


# ---------------------------------------------------------------------------------------------
# Sites


class Sites:
    """Every site of the plan, on :80 and :443 of all the namespace's addresses."""

    def __init__(self, sites: list[SitePlan], state: Path) -> None:
        self.by_name = {s.domain: s for s in sites}
        self.by_ip = {s.ip: s for s in sites}
        self.state = state
        self.ca_cert = (state / "ca.pem").read_bytes()
        self.ca_key = (state / "ca.key").read_bytes()
        self.contexts: dict[str, ssl.SSLContext] = {}

    def _context(self, server_name: str | None) -> ssl.SSLContext:
        """The TLS context for a ClientHello's SNI (a default certificate without one)."""
        site = self.by_name.get(server_name or "")
        key = site.domain if site else "_default"
        ctx = self.contexts.get(key)
        if ctx is None:
            if site is None:
                names, expired = ["unknown.lab.invalid"], False
            elif site.server == "tls_wrong_name":
                names, expired = [f"wrong-name.{site.domain}.invalid"], False
            else:
                names, expired = [site.domain], site.server == "tls_expired"
            pem = make_leaf(self.ca_cert, self.ca_key, names, expired=expired)
            path = self.state / "certs" / f"{key}.pem"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(pem)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(path)
            ctx.set_alpn_protocols(["http/1.1"])
            self.contexts[key] = ctx
        return ctx

    def base_context(self) -> ssl.SSLContext:
        ctx = self._context(None)

        def pick(sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
            # asyncio's SSLObject has no socket address: choose by SNI alone.
            sock.context = self._context(name)

        ctx.sni_callback = pick
        return ctx

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._handle(reader, writer)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        local_ip = str(writer.get_extra_info("sockname")[0])
        peer_ip = str(writer.get_extra_info("peername")[0])
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        path = parts[1] if len(parts) > 1 else "/"
        host = ""
        for line in lines[1:]:
            if line.lower().startswith("host:"):
                host = line[5:].strip().split(":")[0].lower()
        site = self.by_name.get(host) or self.by_ip.get(local_ip)
        if site is None:
            body, status, extra = b"not found\n", "404 Not Found", ""
        else:
            if site.delay_ms:
                await asyncio.sleep(site.delay_ms / 1000)
            status, extra = "200 OK", ""
            if path.startswith("/bytes/"):
                count = path[7:]
                n = min(int(count) if count.isascii() and count.isdigit() else 0, 8 << 20)
                body = b"x" * n
            else:
                body = page_body(site)
            if site.echo_client:
                # A real server would see the probe's public address: echo it.
                extra = f"X-Client-IP: {peer_ip}\r\n"
                body += f"<p>your address: {peer_ip}</p>\n".encode()
        ctype = "text/html; charset=utf-8"
        writer.write(
            (
                f"HTTP/1.1 {status}\r\nServer: dideban-lab\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
            ).encode()
            + body
        )
        await asyncio.wait_for(writer.drain(), 60)


# ---------------------------------------------------------------------------------------------
# Entry point


async def run(role: str, state: Path) -> None:
    plan = Plan.from_dict(json.loads((state / "plan.json").read_text(encoding="utf-8")))
    if role == "inet":
        await serve_dns(Resolver(plan, isp=False), HONEST_RESOLVER)
        sites = Sites(plan.sites, state)
        await asyncio.start_server(sites.handle, "0.0.0.0", 80, backlog=512)
        await asyncio.start_server(
            sites.handle,
            "0.0.0.0",
            443,
            ssl=sites.base_context(),
            ssl_handshake_timeout=10,
            backlog=512,
        )
    elif role == "domestic":
        await serve_dns(Resolver(plan, isp=True), ISP_RESOLVER)
        domestic = SitePlan(DOMESTIC_SITE_NAME, DOMESTIC_SITE_IP, "Domestic lab site", "ok")
        sites = Sites([domestic], state)
        await asyncio.start_server(sites.handle, DOMESTIC_SITE_IP, 80)
    else:
        raise SystemExit(f"unknown role {role!r}")
    (state / f"ready-{role}").write_text("ready\n", encoding="utf-8")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: python -m dideban.lab.netns.services inet|domestic STATE_DIR")
    asyncio.run(run(argv[0], Path(argv[1])))


if __name__ == "__main__":
    main(sys.argv[1:])
