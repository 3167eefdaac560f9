"""The lab's certificate authority and the per-site TLS server contexts.

One CA per running lab; its PEM goes to `LabNetwork.ca_pem` so the probe and the test helper
trust the lab's sites and nothing else. Every leaf shares one EC P-256 key: generating a key
per site would dominate startup of a 903-site lab, and a shared key changes nothing a probe
can observe. Leaves are signed lazily, on the first ClientHello naming the site, and cached.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_NAME = "unknown-site.lab.invalid"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Dideban censorship lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


class LabCA:
    """A throwaway CA that signs leaf certificates for the lab's sites."""

    def __init__(self, now: Callable[[], dt.datetime] | None = None) -> None:
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        t = self._now()
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.leaf_key = ec.generate_private_key(ec.SECP256R1())
        ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name("Dideban lab CA"))
            .issuer_name(_name("Dideban lab CA"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(t - dt.timedelta(days=365))
            .not_valid_after(t + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self._aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)

    @property
    def ca_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @property
    def leaf_key_pem(self) -> bytes:
        return self.leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def issue(self, names: list[str], *, expired: bool = False) -> x509.Certificate:
        """A server certificate for `names` (DNS names or IP addresses), valid now unless
        `expired` (then it ended 30 days ago)."""
        t = self._now()
        if expired:
            start, end = t - dt.timedelta(days=120), t - dt.timedelta(days=30)
        else:
            start, end = t - dt.timedelta(days=1), t + dt.timedelta(days=90)
        sans: list[x509.GeneralName] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        return (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.cert.subject)
            .public_key(self.leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(self._aki, critical=False)
            .sign(self.key, hashes.SHA256())
        )


class ServerContexts:
    """TLS server contexts per served name, built on first use.

    `leaf_for(name)` says which certificate a name gets: `(names_on_cert, expired)`, or None
    for a name the lab does not serve (it then gets the default context, whose certificate
    names nobody). `ssl` can only load certificates from files, hence the private directory.
    """

    def __init__(self, ca: LabCA, leaf_for: Callable[[str], tuple[list[str], bool] | None]) -> None:
        self._ca = ca
        self._leaf_for = leaf_for
        self._dir = tempfile.TemporaryDirectory(prefix="dideban-lab-tls-")
        self._key_path = Path(self._dir.name) / "leaf.key"
        self._key_path.write_bytes(ca.leaf_key_pem)
        self._key_path.chmod(0o600)
        self._contexts: dict[tuple[tuple[str, ...], bool], ssl.SSLContext] = {}
        self.default = self._context([DEFAULT_NAME], False)
        self.default.sni_callback = self._on_sni

    def close(self) -> None:
        self._dir.cleanup()

    def _context(self, names: list[str], expired: bool) -> ssl.SSLContext:
        key = (tuple(names), expired)
        ctx = self._contexts.get(key)
        if ctx is None:
            cert = self._ca.issue(names, expired=expired)
            path = Path(self._dir.name) / f"leaf-{len(self._contexts)}.pem"
            path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(path, self._key_path)
            ctx.set_alpn_protocols(["http/1.1"])
            self._contexts[key] = ctx
        return ctx

    def context_for(self, server_name: str | None) -> ssl.SSLContext:
        leaf = self._leaf_for(server_name.lower().rstrip(".")) if server_name else None
        if leaf is None:
            return self.default
        return self._context(*leaf)

    def _on_sni(
        self, sslobj: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        ctx = self.context_for(server_name)
        if ctx is not self.default:
            sslobj.context = ctx
