"""Reading one task out of ``config/<seq>.settings``.

The agent writes ``{"runtimeSettings": [{"handlerSettings": {"publicSettings",
"protectedSettings", "protectedSettingsCertThumbprint"}}]}``. Protected settings are
CMS (PKCS#7) enveloped data, base64, encrypted to the tenant certificate whose
``<THUMBPRINT>.crt``/``.prv`` the agent keeps in ``/var/lib/waagent``; like the real
extension we try ``openssl cms`` first (AES and 3DES) and fall back to ``openssl smime``.
Protected settings that are already a JSON object are taken as they are, so the lab
works before the fabric hands out certificates.
"""

from __future__ import annotations

import base64
import binascii
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import protocol
from .paths import GuestPaths

OPENSSL_TIMEOUT = 30.0


class TaskError(Exception):
    """The settings cannot be acted on; ``code`` is what the status reports."""

    def __init__(self, code: int, message: str, task_id: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.task_id = task_id


@dataclass(frozen=True)
class Task:
    """One backup request: the parsed public and protected settings of one seq."""

    seq: int
    public: protocol.PublicSettings
    protected: protocol.ProtectedSettings
    thumbprint: str | None


def read_handler_settings(path: Path) -> dict[str, Any]:
    """``runtimeSettings[0].handlerSettings`` of a settings file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        handler = doc["runtimeSettings"][0]["handlerSettings"]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise TaskError(
            protocol.CODE_INVALID_SETTINGS, f"cannot read settings {path}: {exc}"
        ) from exc
    if not isinstance(handler, dict):
        raise TaskError(protocol.CODE_INVALID_SETTINGS, f"{path}: handlerSettings not an object")
    return handler


def load_task(path: Path, seq: int, paths: GuestPaths) -> Task:
    """Parse and validate a settings file into a :class:`Task` (raises TaskError)."""
    handler = read_handler_settings(path)
    public_raw = handler.get("publicSettings")
    task_id = str(public_raw.get("taskId", "")) if isinstance(public_raw, dict) else ""
    thumbprint = handler.get("protectedSettingsCertThumbprint") or None
    try:
        public = protocol.PublicSettings.from_json(public_raw)
        if public.command.lower() != protocol.COMMAND_SNAPSHOT:
            raise protocol.SettingsError(
                f"commandToExecute is {public.command!r}, expected {protocol.COMMAND_SNAPSHOT!r}"
            )
        protected_raw = _clear_protected(handler.get("protectedSettings"), thumbprint, paths)
        protected = protocol.ProtectedSettings.from_json(protected_raw)
    except protocol.SettingsError as exc:
        raise TaskError(
            protocol.CODE_INVALID_SETTINGS,
            f"required field empty or not correct: {exc}",
            task_id,
        ) from exc
    except DecryptionError as exc:
        raise TaskError(
            protocol.CODE_CERTIFICATE_NOT_FOUND, f"unable to load certificate: {exc}", task_id
        ) from exc
    return Task(seq, public, protected, str(thumbprint) if thumbprint else None)


def strip_protected_settings(path: Path) -> bool:
    """Drop ``protectedSettings`` from the settings file once read, as the real extension
    does, so the SAS URIs do not stay on disk. Returns whether the file changed."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        handler = doc["runtimeSettings"][0]["handlerSettings"]
        if handler.pop("protectedSettings", None) is None:
            return False
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        tmp.replace(path)
        return True
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        return False


class DecryptionError(Exception):
    """Protected settings could not be decrypted (no certificate, or openssl failed)."""


def _clear_protected(raw: Any, thumbprint: Any, paths: GuestPaths) -> Any:
    if isinstance(raw, dict):
        return raw  # not encrypted (the lab before certificates exist)
    if raw is None or raw == "":
        raise protocol.SettingsError("protectedSettings is missing")
    if not isinstance(raw, str):
        raise protocol.SettingsError("protectedSettings is neither an object nor a string")
    if not thumbprint:
        try:
            return json.loads(raw)  # a JSON text that nobody encrypted
        except ValueError as exc:
            raise protocol.SettingsError(
                "protectedSettings is a string but no certificate thumbprint was given"
            ) from exc
    clear = decrypt(raw, str(thumbprint), paths)
    try:
        return json.loads(clear)
    except ValueError as exc:
        raise protocol.SettingsError(f"decrypted protectedSettings is not JSON: {exc}") from exc


def decrypt(ciphertext_b64: str, thumbprint: str, paths: GuestPaths) -> str:
    """Decrypt base64 CMS with the tenant certificate's key; returns the clear text."""
    cert = paths.waagent_lib / f"{thumbprint}.crt"
    key = paths.waagent_lib / f"{thumbprint}.prv"
    if not cert.is_file() or not key.is_file():
        raise DecryptionError(f"{cert.name}/{key.name} not found in {paths.waagent_lib}")
    try:
        der = base64.b64decode(ciphertext_b64, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise DecryptionError(f"protectedSettings is not base64: {exc}") from exc
    openssl = shutil.which("openssl") or "/usr/bin/openssl"
    errors = []
    for command in ("cms", "smime"):
        args = [openssl, command, "-inform", "DER", "-decrypt"]
        args += ["-recip", str(cert), "-inkey", str(key)]
        try:
            done = subprocess.run(
                args, input=der, capture_output=True, timeout=OPENSSL_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            errors.append(f"openssl {command}: {exc}")
            continue
        if done.returncode == 0 and done.stdout:
            return done.stdout.decode("utf-8", "replace")
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        errors.append(f"openssl {command} exit {done.returncode}: {' '.join(detail[:2])}")
    raise DecryptionError("; ".join(errors))
