"""Tenant certificates (lab/platform/certificates.py), checked with the guest's own
openssl commands: what the agent runs on a Certificates document, and what an
extension runs on its protected settings."""

from __future__ import annotations

import base64
import json
import re
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path
from xml.dom import minidom

import pytest

from lab.platform import documents
from lab.platform.certificates import (
    TENANT_SUBJECT,
    CertificateError,
    TenantCertificate,
    TenantCertificates,
    TransportCertError,
    decode_transport_cert,
    thumbprint,
)
from lab.platform.documents import GoalStateMetadata, HandlerSpec
from tests.unit.agent_crypto import (
    content_cipher,
    decrypt_protected_settings,
    install_certificates,
    make_transport_cert,
    openssl,
    transport_header,
)
from tests.unit.fabric_samples import agent_find, agent_getattr, agent_text

SNAPSHOT_SETTINGS = {
    "objectStr": base64.b64encode(b'["http://10.199.0.3/disk0?sv=x&sig=y"]').decode(),
    "logsBlobUri": None,
    "statusBlobUri": "http://10.199.0.3/status?sig=z&sp=rw",
    "note": 'ünïcode & <xml> "quotes"',
}


@pytest.fixture(scope="module")
def tenant() -> TenantCertificate:
    return TenantCertificate()


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    """A guest's /var/lib/waagent with a fresh transport certificate."""
    make_transport_cert(tmp_path / "waagent")
    return tmp_path / "waagent"


def test_tenant_certificate_is_made_once_and_named_by_sha1(tenant: TenantCertificate) -> None:
    first = tenant.thumbprint
    assert re.fullmatch(r"[0-9A-F]{40}", first)
    assert tenant.thumbprint == first and tenant.cert_pem == tenant.cert_pem
    cert_file_fingerprint = openssl(
        "x509", "-noout", "-fingerprint", "-sha1", stdin=tenant.cert_pem
    )
    assert cert_file_fingerprint.decode().strip().split("=")[1].replace(":", "") == first
    subject = openssl("x509", "-noout", "-subject", stdin=tenant.cert_pem).decode()
    assert "Windows Azure CRP Certificate Generator" in subject
    assert TENANT_SUBJECT.startswith("/DC=")
    assert b"PRIVATE KEY" in tenant.key_pem


def test_concurrent_first_use_makes_one_certificate() -> None:
    cert = TenantCertificate()
    seen: list[str] = []
    threads = [threading.Thread(target=lambda: seen.append(cert.thumbprint)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1


def test_directory_keeps_the_certificate_across_restarts(tmp_path: Path) -> None:
    first = TenantCertificate(tmp_path / "vm1")
    thumb = first.thumbprint
    key_mode = stat.S_IMODE((tmp_path / "vm1" / "tenant.prv").stat().st_mode)
    assert key_mode == 0o600
    assert TenantCertificate(tmp_path / "vm1").thumbprint == thumb
    (tmp_path / "vm1" / "tenant.crt").write_text("damaged")
    assert TenantCertificate(tmp_path / "vm1").thumbprint != thumb


def test_one_certificate_per_guest(tmp_path: Path) -> None:
    store = TenantCertificates(tmp_path)
    assert store.for_guest("vm1") is store.for_guest("vm1")
    assert store.for_guest("vm1").thumbprint != store.for_guest("vm2").thumbprint
    assert (tmp_path / "vm2" / "tenant.crt").is_file()
    for bad in ("", "..", "a/b", ".hidden"):
        with pytest.raises(ValueError):
            store.for_guest(bad)


# --------------------------------------------------------------------------- W5


@pytest.mark.parametrize(
    ("cipher", "expected"),
    [("DES_EDE3_CBC", "des-ede3-cbc"), (None, "des-ede3-cbc"), ("AES128_CBC", "aes-128-cbc")],
)
def test_agent_installs_the_tenant_certificate(
    tenant: TenantCertificate, lib: Path, cipher: str | None, expected: str
) -> None:
    """The Certificates document decrypts with the agent's own commands (2.2.47, 2.7.3.0
    and 2.12.0.2 send DES_EDE3_CBC; later agents try AES128_CBC first)."""
    xml = tenant.certificates_document(transport_header(lib), cipher=cipher, incarnation="7")
    doc = minidom.parseString(xml)
    assert agent_text(agent_find(doc, "Format")) == "Pkcs7BlobWithPfxContents"
    assert agent_text(agent_find(doc, "Incarnation")) == "7"
    data = agent_text(agent_find(doc, "Data")) or ""
    lines = data.split("\n")
    assert len(lines) > 1 and all(len(line) <= 64 for line in lines)  # wrapped, as Azure
    assert content_cipher(base64.b64decode(data)) == expected

    assert install_certificates(xml, lib) == [tenant.thumbprint]
    assert (
        lib / f"{tenant.thumbprint}.crt"
    ).read_text().strip() == tenant.cert_pem.decode().strip()
    installed_key = openssl("pkey", "-in", str(lib / f"{tenant.thumbprint}.prv"), "-pubout")
    assert installed_key == openssl("x509", "-pubkey", "-noout", stdin=tenant.cert_pem)


def test_pfx_is_shaped_like_azures(tenant: TenantCertificate) -> None:
    pfx = tenant.pfx()
    info = openssl("pkcs12", "-info", "-noout", "-password", "pass:", stdin=pfx, with_stderr=True)
    assert b"MAC: sha1" in info
    assert b"pbeWithSHA1And3-KeyTripleDES-CBC" in info
    assert tenant.pfx() == pfx  # built once


def test_document_is_reused_for_the_same_transport_cert(
    tenant: TenantCertificate, lib: Path
) -> None:
    header = transport_header(lib)
    assert tenant.certificates_data(header) == tenant.certificates_data(header)
    assert tenant.certificates_data(header) != tenant.certificates_data(header, "AES128_CBC")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        "not base64 !!",
        base64.b64encode(b"plain text, not DER").decode(),
        base64.b64encode(b"\x30\x03\x02\x01\x00").decode(),  # DER, but not a certificate
        "A" * 20000,
    ],
)
def test_unusable_transport_cert_is_refused(tenant: TenantCertificate, header: str | None) -> None:
    with pytest.raises(TransportCertError):
        tenant.certificates_data(header)  # type: ignore[arg-type]


def test_unknown_cipher_is_refused(tenant: TenantCertificate, lib: Path) -> None:
    with pytest.raises(TransportCertError, match="cipher"):
        tenant.certificates_data(transport_header(lib), "ROT13")


def test_header_tolerates_folding(lib: Path) -> None:
    header = transport_header(lib)
    folded = "\n ".join(header[i : i + 64] for i in range(0, len(header), 64))
    assert decode_transport_cert(folded) == base64.b64decode(header)


def test_missing_openssl_is_a_platform_fault(tmp_path: Path) -> None:
    with pytest.raises(CertificateError):
        _ = TenantCertificate(openssl=str(tmp_path / "no-openssl")).thumbprint


# --------------------------------------------------------------------------- settings


def test_protected_settings_decrypt_with_the_extensions_command(
    tenant: TenantCertificate, lib: Path
) -> None:
    """End to end on the guest side: the agent installs <THUMB>.crt/.prv from the
    Certificates document, and ``openssl smime -decrypt`` with them gives the dict back."""
    install_certificates(tenant.certificates_document(transport_header(lib)), lib)
    ciphertext, thumb = tenant.encrypt_settings(SNAPSHOT_SETTINGS)
    assert thumb == tenant.thumbprint
    assert decrypt_protected_settings(ciphertext, thumb, lib) == SNAPSHOT_SETTINGS
    der = base64.b64decode(ciphertext, validate=True)
    assert content_cipher(der) == "des-ede3-cbc"  # what CRP uses (WA's ext_conf.xml sample)
    assert "pkcs7-envelopedData" in openssl("asn1parse", "-inform", "DER", stdin=der).decode()


def test_same_settings_same_ciphertext(tenant: TenantCertificate) -> None:
    assert tenant.encrypt_settings({"a": 1}) == tenant.encrypt_settings({"a": 1})
    assert tenant.encrypt_settings({"a": 1})[0] != tenant.encrypt_settings({"a": 2})[0]


def test_rendered_extensions_config_carries_decryptable_settings(
    tenant: TenantCertificate, lib: Path
) -> None:
    """documents + certificates together: the ExtensionsConfig the agent fetches."""
    spec = HandlerSpec(
        name="Microsoft.Azure.RecoveryServices.VMSnapshotLinux",
        version="1.0.91.0",
        manifest_url="http://10.199.0.2/artifacts/m.xml",
        seq_no=3,
        public_settings={"taskId": "t-3", "commandToExecute": "snapshot"},
        protected_settings=SNAPSHOT_SETTINGS,
    )
    xml = documents.extensions_config_xml(
        incarnation="4",
        handlers=[spec],
        status_upload_blob="http://10.199.0.2/machine/statusblob/vm1?sig=x",
        metadata=GoalStateMetadata("4", datetime(2026, 1, 1, tzinfo=UTC), "a", "c"),
        encryptor=tenant,
    )
    runtime = agent_find(minidom.parseString(xml), "RuntimeSettings")
    assert agent_getattr(runtime, "seqNo") == "3"
    settings = json.loads(agent_text(runtime) or "")["runtimeSettings"][0]["handlerSettings"]
    assert set(settings) == {
        "publicSettings",
        "protectedSettings",
        "protectedSettingsCertThumbprint",
    }
    assert settings["protectedSettingsCertThumbprint"] == tenant.thumbprint
    install_certificates(tenant.certificates_document(transport_header(lib)), lib)
    clear = decrypt_protected_settings(settings["protectedSettings"], tenant.thumbprint, lib)
    assert clear == SNAPSHOT_SETTINGS


def test_thumbprint_of_pem() -> None:
    with pytest.raises(ValueError):
        thumbprint(b"no pem here")
