"""Throw-away TLS material for the real-server test rig.

One private CA signs two server certificates:

* ``localhost`` (SAN ``DNS:localhost`` and ``IP:127.0.0.1``) — what the servers normally present,
  so a client that trusts ``ca_pem`` verifies it, and a client using the system trust store
  fails with "certificate not trusted";
* ``wrong.example`` (no localhost, no IP) — signed by the same CA, so a client that trusts the CA
  still fails, but with a host-name mismatch instead. Tests can tell the two errors apart.

EC P-256 keys: generating them takes milliseconds, unlike RSA, and every TLS stack we talk to
(OpenSSL in Python and Dovecot) accepts them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

WRONG_HOSTNAME = "wrong.example"


@dataclass(frozen=True)
class ServerCert:
    """A server certificate (leaf only, PEM) and its private key on disk."""

    cert_path: Path
    key_path: Path
    cert_pem: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]

    def server_context(self) -> ssl.SSLContext:
        """An ``ssl`` server context presenting this certificate."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert_path), str(self.key_path))
        return ctx


@dataclass(frozen=True)
class TestCerts:
    """Everything :func:`generate_test_certs` wrote."""

    __test__ = False  # not a pytest test class despite the name

    directory: Path
    ca_path: Path
    ca_pem: str
    localhost: ServerCert
    wrong_host: ServerCert

    # Shortcuts for the common case.
    @property
    def cert_path(self) -> Path:
        return self.localhost.cert_path

    @property
    def key_path(self) -> Path:
        return self.localhost.key_path

    def server_context(self, *, wrong_host: bool = False) -> ssl.SSLContext:
        """Server-side context with the localhost (or the wrong-host) certificate."""
        return (self.wrong_host if wrong_host else self.localhost).server_context()

    def client_context(self) -> ssl.SSLContext:
        """Client-side context that verifies certificates and host names against our CA only."""
        return ssl.create_default_context(cadata=self.ca_pem)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Mailwright tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _validity() -> tuple[dt.datetime, dt.datetime]:
    # Backdated a day so clock skew between processes never makes a fresh cert "not yet valid".
    now = dt.datetime.now(dt.UTC)
    return now - dt.timedelta(days=1), now + dt.timedelta(days=3650)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class CertificateAuthority:
    """A self-signed CA in memory that can issue server certificates."""

    def __init__(self, common_name: str = "Mailwright Test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        not_before, not_after = _validity()
        public_key = self.key.public_key()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            # OpenSSL 3 / Python's VERIFY_X509_STRICT want key usage and key identifiers present.
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
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
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def issue(
        self,
        directory: Path,
        stem: str,
        dns_names: Iterable[str],
        ip_addresses: Iterable[str] = (),
    ) -> ServerCert:
        """Issue a server certificate and write ``<stem>.crt`` / ``<stem>.key`` into *directory*."""
        dns = tuple(dns_names)
        ips = tuple(ip_addresses)
        if not dns and not ips:
            raise ValueError("a server certificate needs at least one DNS name or IP address")
        key = ec.generate_private_key(ec.SECP256R1())
        not_before, not_after = _validity()
        san: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        san += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(dns[0] if dns else ips[0]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        cert_path = directory / f"{stem}.crt"
        key_path = directory / f"{stem}.key"
        cert_path.write_bytes(cert_pem)
        key_path.write_bytes(_key_pem(key))
        key_path.chmod(0o600)
        return ServerCert(
            cert_path=cert_path,
            key_path=key_path,
            cert_pem=cert_pem.decode("ascii"),
            dns_names=dns,
            ip_addresses=ips,
        )


def generate_test_certs(directory: Path | str) -> TestCerts:
    """Write ``ca.crt``, ``localhost.crt/.key`` and ``wrong-host.crt/.key`` into *directory*."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority()
    ca_pem = ca.pem
    ca_path = directory / "ca.crt"
    ca_path.write_text(ca_pem)
    return TestCerts(
        directory=directory,
        ca_path=ca_path,
        ca_pem=ca_pem,
        localhost=ca.issue(directory, "localhost", ["localhost"], ["127.0.0.1"]),
        wrong_host=ca.issue(directory, "wrong-host", [WRONG_HOSTNAME]),
    )
