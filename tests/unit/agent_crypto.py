"""The guest's half of the certificate exchange, done the way the real agent and an
extension do it, with the same openssl commands, for tests.

Mirrors WALinuxAgent 2.2.47 / 2.7.3.0 / 2.12.0.2 (``utils/cryptutil.py`` and the
``Certificates`` class of ``protocol/goal_state.py``): a transport certificate from
``openssl req``, the header as the PEM body without BEGIN/END lines or newlines, the
``Data`` wrapped in a MIME envelope and decrypted with ``openssl cms -decrypt | openssl
pkcs12 -nodes -password pass:``, the PEM split into ``<THUMBPRINT>.crt`` / ``.prv``
(thumbprint from ``openssl x509 -fingerprint``, keys matched to certs by public key).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path
from typing import Any
from xml.dom import minidom

from tests.unit.fabric_samples import agent_find, agent_text

TRANSPORT_CERT = "TransportCert.pem"
TRANSPORT_PRV = "TransportPrivate.pem"


def openssl(*args: str, stdin: bytes | None = None, with_stderr: bool = False) -> bytes:
    result = subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout + result.stderr if with_stderr else result.stdout


def make_transport_cert(lib: Path) -> None:
    """``CryptUtil.gen_transport_cert``."""
    lib.mkdir(parents=True, exist_ok=True)
    openssl(
        *("req", "-x509", "-nodes", "-subj", "/CN=LinuxTransport", "-days", "730"),
        *("-newkey", "rsa:2048", "-keyout", str(lib / TRANSPORT_PRV)),
        *("-out", str(lib / TRANSPORT_CERT)),
    )


def transport_header(lib: Path) -> str:
    """``textutil.get_bytes_from_pem`` of the transport certificate."""
    text = (lib / TRANSPORT_CERT).read_text()
    return "".join(line for line in text.split("\n") if "----" not in line)


def install_certificates(xml: bytes, lib: Path) -> list[str]:
    """What the agent does with a Certificates document; returns the thumbprints."""
    doc = minidom.parseString(xml)
    data = agent_text(agent_find(doc, "Data"))
    assert data is not None, "no Data: the agent would install nothing"
    fmt = agent_text(agent_find(doc, "Format"))
    assert fmt in (None, "Pkcs7BlobWithPfxContents"), fmt
    p7m = lib / "Certificates.p7m"
    p7m.write_text(
        "MIME-Version:1.0\n"
        f'Content-Disposition: attachment; filename="{p7m}"\n'
        f'Content-Type: application/x-pkcs7-mime; name="{p7m}"\n'
        "Content-Transfer-Encoding: base64\n"
        "\n"
        f"{data}"
    )
    pfx = openssl(
        *("cms", "-decrypt", "-in", str(p7m), "-inkey", str(lib / TRANSPORT_PRV)),
        *("-recip", str(lib / TRANSPORT_CERT)),
    )
    pem = openssl("pkcs12", "-nodes", "-password", "pass:", stdin=pfx).decode()
    private_keys: dict[bytes, str] = {}
    thumbprints: dict[bytes, str] = {}
    for block in re.finditer(r"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----\n?", pem, re.S):
        kind, text = block.group(1), block.group(0)
        tmp = lib / "block.tmp"
        tmp.write_text(text)
        if kind.endswith("KEY"):
            private_keys[openssl("pkey", "-in", str(tmp), "-pubout")] = text
        else:
            fingerprint = openssl("x509", "-in", str(tmp), "-fingerprint", "-noout").decode()
            thumb = fingerprint.rstrip().split("=")[1].replace(":", "").upper()
            thumbprints[openssl("x509", "-in", str(tmp), "-pubkey", "-noout")] = thumb
            (lib / f"{thumb}.crt").write_text(text)
        tmp.unlink()
    for pub, text in private_keys.items():
        (lib / f"{thumbprints[pub]}.prv").write_text(text)
    return sorted(thumbprints.values())


def decrypt_protected_settings(ciphertext: str, thumb: str, lib: Path) -> Any:
    """How the VMSnapshot extension reads its protected settings."""
    der = lib / "settings.der"
    der.write_bytes(base64.b64decode(ciphertext))
    clear = openssl(
        *("smime", "-inform", "DER", "-decrypt", "-in", str(der)),
        *("-recip", str(lib / f"{thumb}.crt"), "-inkey", str(lib / f"{thumb}.prv")),
    )
    return json.loads(clear)


def content_cipher(der: bytes) -> str:
    """The content-encryption algorithm of a CMS/PKCS#7 enveloped blob."""
    parsed = openssl("asn1parse", "-inform", "DER", stdin=der).decode()
    names: list[str] = re.findall(r"OBJECT\s+:(\S+)", parsed)
    ciphers = [n for n in names if n.startswith(("des-", "aes-"))]
    assert len(ciphers) == 1, names
    return ciphers[0]
