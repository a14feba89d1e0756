"""The lab CA and the ARM twin's server certificate (lab/provision/tls.py)."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509

from lab.provision.tls import issue_server_cert, make_lab_ca, write_lab_tls


@pytest.fixture(scope="module")
def lab_tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls")
    write_lab_tls("unit", directory)
    return directory


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_writes_the_three_files_and_keeps_the_key_private(lab_tls: Path) -> None:
    assert sorted(p.name for p in lab_tls.iterdir()) == ["ca.pem", "server.key", "server.pem"]
    assert stat.S_IMODE((lab_tls / "server.key").stat().st_mode) == 0o600


def test_rewriting_tightens_a_loose_key_file(tmp_path: Path) -> None:
    key = tmp_path / "server.key"
    key.write_text("old")
    key.chmod(0o644)
    write_lab_tls("again", tmp_path)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "PRIVATE KEY" in key.read_text()


def test_server_cert_is_issued_by_the_lab_ca(lab_tls: Path) -> None:
    ca = _load(lab_tls / "ca.pem")
    server = _load(lab_tls / "server.pem")
    server.verify_directly_issued_by(ca)  # raises if the signature or issuer is wrong
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert "unit" in ca.subject.rfc4514_string()


def test_server_cert_names_loopback_address_and_localhost(lab_tls: Path) -> None:
    san = _load(lab_tls / "server.pem").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert san.value.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


def test_each_lab_gets_its_own_ca() -> None:
    first, second = make_lab_ca("a"), make_lab_ca("b")
    server = issue_server_cert(first)
    with pytest.raises(ValueError):
        server.certificate.verify_directly_issued_by(second.certificate)


def test_a_server_cert_needs_a_name() -> None:
    with pytest.raises(ValueError):
        issue_server_cert(make_lab_ca("x"), dns_names=(), ip_addresses=())


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_tls_handshake_verifies_against_the_ca(lab_tls: Path, host: str) -> None:
    """Python's own TLS stack (what the SDK's transport uses) accepts the chain and name."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(lab_tls / "server.pem", lab_tls / "server.key")
    client_ctx = ssl.create_default_context(cafile=str(lab_tls / "ca.pem"))
    left, right = socket.socketpair()  # no network: the two ends of a local pipe
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(right, server_side=True) as tls:
                tls.sendall(b"ok")
        except (OSError, ssl.SSLError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    with client_ctx.wrap_socket(left, server_hostname=host) as tls:
        assert tls.recv(2) == b"ok"
    thread.join(timeout=5)
    assert not errors


def test_tls_handshake_rejects_a_name_not_in_the_cert(lab_tls: Path) -> None:
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(lab_tls / "server.pem", lab_tls / "server.key")
    client_ctx = ssl.create_default_context(cafile=str(lab_tls / "ca.pem"))
    left, right = socket.socketpair()

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(right, server_side=True):
                pass
        except (OSError, ssl.SSLError):
            pass

    thread = threading.Thread(target=serve)
    thread.start()
    with pytest.raises(ssl.SSLCertVerificationError):
        client_ctx.wrap_socket(left, server_hostname="example.test")
    left.close()
    thread.join(timeout=5)
