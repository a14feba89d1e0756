"""Tenant certificates: how the platform hands a VM secrets that only that VM can read.

On Azure every VM gets a tenant certificate from CRP. The WireServer delivers it (cert
and private key) in the goal state's ``Certificates`` document, encrypted to the
*transport* certificate the agent sends in the ``x-ms-guest-agent-public-x509-cert``
header; the agent decrypts it and stores ``<THUMBPRINT>.crt`` / ``<THUMBPRINT>.prv`` in
``/var/lib/waagent``. CRP encrypts every extension's ``protectedSettings`` to the same
certificate and names it by ``protectedSettingsCertThumbprint``, so an extension can
decrypt its own settings with ``openssl smime -decrypt``.

This module does both halves with the ``openssl`` CLI, because the fabric image has
Debian's ``openssl`` but not python ``cryptography``. The shapes copy what Azure sends
(WALinuxAgent's ``tests/data/wire/certs.xml`` and ``ext_conf.xml`` are real samples):

* the PFX: SHA-1 MAC, ``pbeWithSHA1And3-KeyTripleDES-CBC`` for key and certificate,
  2000 iterations, **empty** password (the agent runs ``pkcs12 -password pass:``). Any
  OpenSSL from 1.0 to 3.x reads that without the legacy provider;
* the envelope around it: CMS enveloped data, 3DES unless the agent asks for
  ``AES128_CBC`` (agents after 2.12 ask for it first, then fall back to 3DES; 2.2.47,
  2.7.3.0 and 2.12.0.2 only ever send ``DES_EDE3_CBC``), base64 in 64-column lines (a
  one-line body defeats OpenSSL 3's S/MIME reader, which the agent feeds it through);
* protected settings: PKCS#7 enveloped data (RSA key transport, 3DES), DER, base64.

A tenant certificate is made once per guest, on first use, and reused: a new one per
request would give the VM a new thumbprint at every goal state. With a directory it
survives fabric restarts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import subprocess
import tempfile
import textwrap
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lab.platform import documents

OPENSSL = "openssl"
# The subject Azure's tenant certificates carry (seen in /var/lib/waagent/*.crt).
TENANT_SUBJECT = "/DC=Windows Azure CRP Certificate Generator"
TENANT_KEY = "rsa:2048"
TENANT_DAYS = "730"

# x-ms-cipher-name -> the openssl cms cipher option. No header means the old default.
TRANSPORT_CIPHERS = {"DES_EDE3_CBC": "-des3", "AES128_CBC": "-aes128"}
DEFAULT_TRANSPORT_CIPHER = "DES_EDE3_CBC"

# A 4096-bit RSA certificate is under 2 KiB of base64; anything far larger is not one.
MAX_TRANSPORT_CERT_CHARS = 16 * 1024
# Azure's PFX encryption (readable by every OpenSSL without the legacy provider).
_PFX_PBE = "PBE-SHA1-3DES"
_CACHE_SIZE = 32
_OPENSSL_TIMEOUT = 60.0
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class CertificateError(Exception):
    """openssl failed on our side (missing binary, bad state): a platform fault."""


class TransportCertError(ValueError):
    """The agent's transport-certificate header (or cipher) is unusable: a 400."""


def run_openssl(
    args: Sequence[str], *, stdin: bytes | None = None, openssl: str = OPENSSL
) -> bytes:
    """Run ``openssl <args>`` and return its stdout; raises :class:`CertificateError`."""
    try:
        result = subprocess.run(
            [openssl, *args],
            input=stdin,
            capture_output=True,
            check=False,
            timeout=_OPENSSL_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CertificateError(f"cannot run {openssl} {args[0]}: {exc}") from exc
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise CertificateError(f"openssl {args[0]} failed: {' '.join(detail)}")
    return result.stdout


def pem_body(pem: bytes) -> bytes:
    """The DER bytes inside the first PEM block of ``pem``."""
    match = re.search(rb"-----BEGIN [A-Z0-9 ]+-----(.*?)-----END [A-Z0-9 ]+-----", pem, re.S)
    if match is None:
        raise ValueError("no PEM block found")
    return base64.b64decode(b"".join(match.group(1).split()), validate=True)


def thumbprint(cert_pem: bytes) -> str:
    """SHA-1 of the certificate's DER, upper-case hex: the name the agent gives its files
    (``openssl x509 -fingerprint`` without the colons)."""
    return hashlib.sha1(pem_body(cert_pem)).hexdigest().upper()


def wrap_base64(data: bytes, width: int = 64) -> str:
    """Base64 in lines of ``width`` characters, as Azure writes ``Data``."""
    return "\n".join(textwrap.wrap(base64.b64encode(data).decode("ascii"), width))


class TenantCertificate:
    """One tenant certificate and key, made on first use and then kept.

    With ``directory`` the pair lives in ``tenant.crt`` / ``tenant.prv`` there (key mode
    0600) and is reused after a restart; without, it lives in memory only. Thread-safe:
    the fabric's server threads share one instance per guest.
    """

    def __init__(self, directory: Path | None = None, *, openssl: str = OPENSSL) -> None:
        self._directory = directory
        self._openssl = openssl
        self._lock = threading.Lock()
        self._pair: tuple[bytes, bytes] | None = None
        self._pfx: bytes | None = None
        self._cache: OrderedDict[tuple[str, ...], str] = OrderedDict()

    # ------------------------------------------------------------- the pair

    @property
    def cert_pem(self) -> bytes:
        return self._ensure()[0]

    @property
    def key_pem(self) -> bytes:
        return self._ensure()[1]

    @property
    def thumbprint(self) -> str:
        return thumbprint(self.cert_pem)

    def _ensure(self) -> tuple[bytes, bytes]:
        with self._lock:
            if self._pair is None:
                self._pair = self._load() or self._create()
            return self._pair

    def _load(self) -> tuple[bytes, bytes] | None:
        if self._directory is None:
            return None
        try:
            cert = (self._directory / "tenant.crt").read_bytes()
            key = (self._directory / "tenant.prv").read_bytes()
            for pem in (cert, key):
                pem_body(pem)
        except (OSError, ValueError, binascii.Error):
            return None  # absent or damaged: make a new one
        return cert, key

    def _create(self) -> tuple[bytes, bytes]:
        with tempfile.TemporaryDirectory(prefix="snaplab-tenant-") as tmp:
            cert_file, key_file = Path(tmp, "tenant.crt"), Path(tmp, "tenant.prv")
            self._openssl_run(
                [
                    *("req", "-x509", "-nodes", "-newkey", TENANT_KEY, "-sha256"),
                    *("-days", TENANT_DAYS, "-subj", TENANT_SUBJECT),
                    *("-keyout", str(key_file), "-out", str(cert_file)),
                ]
            )
            cert, key = cert_file.read_bytes(), key_file.read_bytes()
        if self._directory is not None:
            self._save(cert, key)
        return cert, key

    def _save(self, cert: bytes, key: bytes) -> None:
        assert self._directory is not None
        self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name, data, mode in (("tenant.prv", key, 0o600), ("tenant.crt", cert, 0o644)):
            partial = self._directory / f".{name}.partial"
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            partial.replace(self._directory / name)

    def _openssl_run(self, args: Sequence[str], stdin: bytes | None = None) -> bytes:
        return run_openssl(args, stdin=stdin, openssl=self._openssl)

    def _cached(self, key: tuple[str, ...]) -> str | None:
        with self._lock:
            value = self._cache.get(key)
            if value is not None:
                self._cache.move_to_end(key)
            return value

    def _remember(self, key: tuple[str, ...], value: str) -> str:
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return value

    # ------------------------------------------------------------- W5 Certificates

    def pfx(self) -> bytes:
        """The PKCS#12 of cert + key, empty password, built once (salts are random, so
        rebuilding would change every Certificates document for no reason)."""
        cert, key = self._ensure()
        with self._lock:
            if self._pfx is not None:
                return self._pfx
        with tempfile.TemporaryDirectory(prefix="snaplab-pfx-") as tmp:
            cert_file, key_file = Path(tmp, "c.pem"), Path(tmp, "k.pem")  # tmp is 0700
            cert_file.write_bytes(cert)
            key_file.write_bytes(key)
            pfx = self._openssl_run(
                [
                    *("pkcs12", "-export", "-in", str(cert_file), "-inkey", str(key_file)),
                    *("-passout", "pass:", "-keypbe", _PFX_PBE, "-certpbe", _PFX_PBE),
                    *("-macalg", "sha1", "-iter", "2000"),
                ]
            )
        with self._lock:
            self._pfx = self._pfx or pfx
            return self._pfx

    def certificates_data(self, transport_cert_header: str, cipher: str | None = None) -> str:
        """The ``Data`` of the Certificates document for this transport certificate.

        Raises :class:`TransportCertError` when the header is not a base64 DER X.509
        certificate or the cipher is not one Azure offers.
        """
        cipher_name = (cipher or DEFAULT_TRANSPORT_CIPHER).strip().upper()
        option = TRANSPORT_CIPHERS.get(cipher_name)
        if option is None:
            raise TransportCertError(f"unsupported x-ms-cipher-name {cipher!r}")
        der = decode_transport_cert(transport_cert_header)
        key = ("certs", cipher_name, base64.b64encode(der).decode("ascii"))
        cached = self._cached(key)
        if cached is not None:
            return cached
        pfx = self.pfx()
        with tempfile.TemporaryDirectory(prefix="snaplab-transport-") as tmp:
            transport = Path(tmp, "transport.pem")
            try:
                transport.write_bytes(
                    self._openssl_run(["x509", "-inform", "DER", "-outform", "PEM"], stdin=der)
                )
            except CertificateError as exc:
                raise TransportCertError(f"transport certificate is not X.509: {exc}") from exc
            enveloped = self._openssl_run(
                ["cms", "-encrypt", "-binary", option, "-outform", "DER", str(transport)],
                stdin=pfx,
            )
        return self._remember(key, wrap_base64(enveloped))

    def certificates_document(
        self, transport_cert_header: str, *, cipher: str | None = None, incarnation: str = "1"
    ) -> bytes:
        """W5: the ``CertificateFile`` XML carrying this tenant certificate."""
        data = self.certificates_data(transport_cert_header, cipher)
        return documents.certificates_xml(incarnation=incarnation, data=data)

    # ------------------------------------------------------------- protected settings

    def encrypt_settings(self, settings: Mapping[str, Any]) -> tuple[str, str]:
        """What CRP does to ``protectedSettings``: JSON, PKCS#7-enveloped to this
        certificate (DER), base64. Returns (ciphertext, thumbprint)."""
        text = json.dumps(dict(settings), separators=(",", ":"))
        key = ("settings", text)
        cached = self._cached(key)
        if cached is None:
            with tempfile.TemporaryDirectory(prefix="snaplab-settings-") as tmp:
                recipient = Path(tmp, "tenant.crt")
                recipient.write_bytes(self.cert_pem)
                enveloped = self._openssl_run(
                    ["smime", "-encrypt", "-binary", "-des3", "-outform", "DER", str(recipient)],
                    stdin=text.encode("utf-8"),
                )
            cached = self._remember(key, base64.b64encode(enveloped).decode("ascii"))
        return cached, self.thumbprint


def decode_transport_cert(header: str | None) -> bytes:
    """The DER certificate in an ``x-ms-guest-agent-public-x509-cert`` header (the PEM
    body without its BEGIN/END lines). Checks only the encoding; openssl checks the rest."""
    if not header or not header.strip():
        raise TransportCertError("x-ms-guest-agent-public-x509-cert is missing")
    compact = "".join(header.split())
    if len(compact) > MAX_TRANSPORT_CERT_CHARS:
        raise TransportCertError("x-ms-guest-agent-public-x509-cert is too long")
    try:
        der = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TransportCertError("x-ms-guest-agent-public-x509-cert is not base64") from exc
    if not der.startswith(b"\x30"):  # an X.509 certificate is a DER SEQUENCE
        raise TransportCertError("x-ms-guest-agent-public-x509-cert is not a DER certificate")
    return der


class TenantCertificates:
    """The tenant certificate of each guest, made on first use (one per VM, as on Azure).

    With ``directory`` each guest's pair is kept under ``directory/<guest>/``.
    """

    def __init__(self, directory: Path | None = None, *, openssl: str = OPENSSL) -> None:
        self._directory = directory
        self._openssl = openssl
        self._lock = threading.Lock()
        self._by_guest: dict[str, TenantCertificate] = {}

    def for_guest(self, name: str) -> TenantCertificate:
        if not _SAFE_NAME.match(name):
            raise ValueError(f"not a usable guest name for a certificate directory: {name!r}")
        with self._lock:
            cert = self._by_guest.get(name)
            if cert is None:
                where = self._directory / name if self._directory is not None else None
                cert = self._by_guest[name] = TenantCertificate(where, openssl=self._openssl)
            return cert
