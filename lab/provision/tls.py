"""The lab's own certificate authority, so the Azure SDK can talk TLS to the ARM twin.

The SDK refuses to send a bearer token over plain HTTP, and we do not want to turn its
certificate checks off: the whole point of the ARM twin is that the unmodified client
runs against it. So each lab gets a throw-away CA, generated at ``up``, and one server
certificate for the addresses the twin listens on (``127.0.0.1`` and ``localhost``).
Clients trust the lab by pointing ``connection_verify`` at ``ca.pem``.

The CA's private key is never written: nothing else is ever signed with it, so a leaked
lab directory cannot be used to mint certificates for other names.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "ca.pem"
SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server.key"

SERVER_DNS_NAMES = ("localhost",)
SERVER_IP_ADDRESSES = ("127.0.0.1",)

# Labs live for hours; a month is plenty and keeps a forgotten lab's CA from living on.
VALIDITY = timedelta(days=30)
# Containers share the host's clock, but allow for a CA made just before a clock step.
BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class CertificateAuthority:
    """A lab CA held in memory: its certificate and the key that signs server certs."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class ServerIdentity:
    """A server certificate and its private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class LabTlsFiles:
    """Where :func:`write_lab_tls` put the PEM files."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_lab_ca(lab: str, now: datetime | None = None) -> CertificateAuthority:
    """A new self-signed CA named after the lab, allowed to sign end-entity certs only."""
    issued = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "snaplab"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"snaplab {lab} CA"),
        ]
    )
    certificate = (
        _validity(x509.CertificateBuilder(), issued)
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(certificate=certificate, key=key)


def issue_server_cert(
    ca: CertificateAuthority,
    dns_names: tuple[str, ...] = SERVER_DNS_NAMES,
    ip_addresses: tuple[str, ...] = SERVER_IP_ADDRESSES,
    now: datetime | None = None,
) -> ServerIdentity:
    """A TLS server certificate for the given names and addresses, signed by ``ca``.

    Clients match the host they dialled against the subjectAltName only, so every
    name and address the twin may be reached by must be listed there.
    """
    if not dns_names and not ip_addresses:
        raise ValueError("a server certificate needs at least one DNS name or IP address")
    issued = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    common_name = dns_names[0] if dns_names else ip_addresses[0]
    ca_public_key = ca.key.public_key()
    certificate = (
        _validity(x509.CertificateBuilder(), issued)
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public_key), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return ServerIdentity(certificate=certificate, key=key)


def write_lab_tls(lab: str, directory: Path) -> LabTlsFiles:
    """Make the lab's CA and the twin's server certificate, and write them as PEM files.

    Returns the paths of ``ca.pem`` (for clients), ``server.pem`` and ``server.key``
    (for the twin; the key is readable by its owner only).
    """
    ca = make_lab_ca(lab)
    server = issue_server_cert(ca)
    directory.mkdir(parents=True, exist_ok=True)
    files = LabTlsFiles(
        ca_cert=directory / CA_FILE,
        server_cert=directory / SERVER_CERT_FILE,
        server_key=directory / SERVER_KEY_FILE,
    )
    _write(files.ca_cert, _cert_pem(ca.certificate), mode=0o644)
    _write(files.server_cert, _cert_pem(server.certificate), mode=0o644)
    _write(files.server_key, _key_pem(server.key), mode=0o600)
    return files


def _validity(builder: x509.CertificateBuilder, issued: datetime) -> x509.CertificateBuilder:
    return builder.not_valid_before(issued - BACKDATE).not_valid_after(issued + VALIDITY)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _cert_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` so that it is never readable with looser permissions than ``mode``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(fd, mode)  # O_CREAT's mode does not apply to a file that already exists
        handle.write(data)
