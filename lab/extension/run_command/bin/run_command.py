"""The lab's RunCommandLinux handler (``Microsoft.CPlat.Core.RunCommandLinux``).

What Azure's Run Command does inside a Linux VM, carried out by the real agent like any
extension: the platform puts the script in the handler's protected settings with a new
sequence number; the agent writes ``config/<seq>.settings`` and runs ``enable``; the
handler decrypts the settings with the tenant certificate, writes the script to
``/var/lib/waagent/run-command/download/<seq>/script.sh``, runs it there with its output
in ``stdout`` and ``stderr`` beside it, and reports in ``status/<seq>.status``:
``Enable succeeded: \\n[stdout]\\n<last 4 KiB>\\n[stderr]\\n<last 4 KiB>``. A script that
exits non-zero still gives "Enable succeeded" (the real extension reports the script's
failure only through its output); settings it cannot use give ``error`` with "Enable
failed: ...". A sequence number it already ran (``mrseq``) is not run again.

Written for the lab from the public behaviour of Azure/run-command-extension-linux
(its settings schema, paths, status wording, log as logfmt lines in
``/var/log/azure/run-command/handler.log``); standard library and ``openssl`` only.

Usage (by ``bin/run-command-shim``): ``run_command.py install|uninstall|update|disable|
enable|placeholder``.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HANDLER_NAME = "Microsoft.CPlat.Core.RunCommandLinux"
DATA_DIR = Path("/var/lib/waagent/run-command")
WAAGENT_LIB = Path("/var/lib/waagent")
SEQ_ENV = "ConfigSequenceNumber"
VERSION_ENV = "AZURE_GUEST_AGENT_EXTENSION_VERSION"
MAX_TAIL = 4 * 1024  # of stdout and of stderr, in the status
MAX_SCRIPT = 256 * 1024
OPENSSL_TIMEOUT = 30.0
PUBLIC_KEYS = frozenset({"skipDos2Unix", "commandToExecute", "script", "fileUris"})
PROTECTED_KEYS = frozenset(
    {"commandToExecute", "script", "fileUris", "storageAccountName", "storageAccountKey"}
)
# Exit codes of a failed command, as the real handler's (install 52, the others 3).
FAIL_EXIT = {"install": 52}


class SettingsProblem(Exception):
    """The settings cannot be run; the message goes into "Enable failed: ..."."""


@dataclass(frozen=True)
class Handler:
    """The handler's folders, as the agent describes them in HandlerEnvironment.json."""

    directory: Path
    config: Path
    status: Path
    version: str

    @classmethod
    def load(cls, directory: Path, environ: Mapping[str, str]) -> Handler:
        doc = json.loads((directory / "HandlerEnvironment.json").read_text(encoding="utf-8"))
        env = (doc[0] if isinstance(doc, list) else doc)["handlerEnvironment"]
        version = environ.get(VERSION_ENV) or directory.name.rpartition("-")[2] or "0.0.0"
        return cls(directory, Path(env["configFolder"]), Path(env["statusFolder"]), version)

    def seq(self, environ: Mapping[str, str]) -> int:
        """The agent's ConfigSequenceNumber, else the highest ``<n>.settings``."""
        raw = environ.get(SEQ_ENV, "").strip()
        if raw.lstrip("-").isdigit():
            return int(raw)
        numbers = [int(p.stem) for p in self.config.glob("*.settings") if p.stem.isdigit()]
        if not numbers:
            raise SettingsProblem("failed to find sequence number: no settings file")
        return max(numbers)

    def status_file(self, seq: int) -> Path:
        return self.status / f"{seq}.status"


class Log:
    """logfmt lines on stdout (the shim appends them to handler.log)."""

    def __init__(self, version: str, operation: str) -> None:
        self._fields = {"version": version, "operation": operation}

    def with_seq(self, seq: int) -> None:
        self._fields["seq"] = str(seq)

    def __call__(self, **fields: object) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        parts = [f"time={stamp}"]
        for key, value in {**self._fields, **{k: str(v) for k, v in fields.items()}}.items():
            parts.append(f"{key}={_logfmt(value)}")
        print(" ".join(parts), flush=True)


def _logfmt(value: str) -> str:
    if value and not any(c in value for c in ' "=\n'):
        return value
    return json.dumps(value)


def write_status(handler: Handler, seq: int, operation: str, status: str, message: str) -> None:
    """``status/<seq>.status`` in the extension status format, written atomically."""
    verb = {"success": "succeeded", "error": "failed", "transitioning": "in progress"}[status]
    text = f"{operation} {verb}" + (f": {message}" if message else "")
    doc = [
        {
            "version": 1,
            "timestampUTC": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "status": {
                "operation": operation,
                "status": status,
                "formattedMessage": {"lang": "en", "message": text},
            },
        }
    ]
    handler.status.mkdir(parents=True, exist_ok=True)
    target = handler.status_file(seq)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    tmp.replace(target)


def read_status(handler: Handler, seq: int) -> str | None:
    try:
        doc = json.loads(handler.status_file(seq).read_text(encoding="utf-8"))
        return str(doc[0]["status"]["status"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    command: str  # commandToExecute, or "" when a script is given
    script: str  # the decoded script text, or ""
    skip_dos2unix: bool


def read_settings(handler: Handler, seq: int) -> Settings:
    """Parse, decrypt and validate ``config/<seq>.settings``."""
    path = handler.config / f"{seq}.settings"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        raw = doc["runtimeSettings"][0]["handlerSettings"]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise SettingsProblem(f"error reading extension configuration: {exc}") from exc
    public = raw.get("publicSettings") or {}
    protected = _protected(raw.get("protectedSettings"), raw.get("protectedSettingsCertThumbprint"))
    if not isinstance(public, dict) or not isinstance(protected, dict):
        raise SettingsProblem("json validation error: settings are not JSON objects")
    for what, doc_part, allowed in (
        ("public", public, PUBLIC_KEYS),
        ("protected", protected, PROTECTED_KEYS),
    ):
        unknown = sorted(set(doc_part) - allowed)
        if unknown:
            raise SettingsProblem(
                f"json validation error: invalid {what} settings JSON: {unknown[0]}"
            )
    commands = [str(d.get("commandToExecute") or "") for d in (public, protected)]
    scripts = [str(d.get("script") or "") for d in (public, protected)]
    if not any(commands) and not any(scripts):
        raise SettingsProblem("invalid configuration: 'commandToExecute' is not specified")
    if all(commands):
        raise SettingsProblem(
            "invalid configuration: 'commandToExecute' was specified both in public and "
            "protected settings; it must be specified only once"
        )
    if all(scripts):
        raise SettingsProblem(
            "invalid configuration: 'script' was specified both in public and protected "
            "settings; it must be specified only once"
        )
    if any(commands) and any(scripts):
        raise SettingsProblem(
            "invalid configuration: 'commandToExecute' and 'script' were both specified, "
            "but only one is validate at a time"
        )
    script = next((s for s in scripts if s), "")
    return Settings(
        command=next((c for c in commands if c), ""),
        script=decode_script(script) if script else "",
        skip_dos2unix=bool(public.get("skipDos2Unix")),
    )


def decode_script(encoded: str) -> str:
    """A script is base64, optionally gzip'ed."""
    if len(encoded) > MAX_SCRIPT:
        raise SettingsProblem(
            f"The script's length ({len(encoded)}) exceeded the maximum allowed length of "
            f"{MAX_SCRIPT}!"
        )
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SettingsProblem(f"failed to base64 decode script: {exc}") from exc
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise SettingsProblem(f"failed to decompress script: {exc}") from exc
    return data.decode("utf-8", "replace")


def _protected(raw: Any, thumbprint: Any) -> Any:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str) or not thumbprint:
        raise SettingsProblem("error reading extension configuration: protectedSettings")
    return json.loads(decrypt(raw, str(thumbprint)))


def decrypt(ciphertext_b64: str, thumbprint: str) -> str:
    """Decrypt base64 CMS with the tenant certificate the agent keeps for the VM."""
    cert, key = WAAGENT_LIB / f"{thumbprint}.crt", WAAGENT_LIB / f"{thumbprint}.prv"
    if not cert.is_file() or not key.is_file():
        raise SettingsProblem(
            f"error reading extension configuration: certificate {thumbprint} not found"
        )
    try:
        der = base64.b64decode(ciphertext_b64)
    except (binascii.Error, ValueError) as exc:
        raise SettingsProblem(f"error reading extension configuration: {exc}") from exc
    openssl = shutil.which("openssl") or "/usr/bin/openssl"
    errors = []
    for command in ("cms", "smime"):
        args = [openssl, command, "-inform", "DER", "-decrypt", "-recip", str(cert)]
        args += ["-inkey", str(key)]
        try:
            done = subprocess.run(
                args, input=der, capture_output=True, timeout=OPENSSL_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            errors.append(str(exc))
            continue
        if done.returncode == 0 and done.stdout:
            return done.stdout.decode("utf-8", "replace")
        errors.append(done.stderr.decode("utf-8", "replace").strip()[:200])
    raise SettingsProblem(
        "error reading extension configuration: failed to decrypt protected settings: "
        + "; ".join(errors)
    )


def strip_protected(handler: Handler, seq: int) -> None:
    """Clear the protected settings from the settings file once used."""
    path = handler.config / f"{seq}.settings"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        settings = doc["runtimeSettings"][0]["handlerSettings"]
        settings.pop("protectedSettings", None)
        settings.pop("protectedSettingsCertThumbprint", None)
        path.write_text(json.dumps(doc), encoding="utf-8")
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        pass


# ---------------------------------------------------------------------------- running


def run(settings: Settings, directory: Path, log: Log) -> tuple[str, str]:
    """Run the command in ``directory``; returns the tails of its stdout and stderr."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if settings.script:
        script = directory / "script.sh"
        text = settings.script if settings.skip_dos2unix else settings.script.replace("\r\n", "\n")
        script.unlink(missing_ok=True)
        script.write_text(text, encoding="utf-8")
        script.chmod(0o500)
        command = str(script)
        log(event="executing protected script", output=directory)
    else:
        command = settings.command
        log(event="executing commandToExecute", output=directory)
    stdout, stderr = directory / "stdout", directory / "stderr"
    pid_file = DATA_DIR / "pidstart"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        pid_file.write_text(f"{process.pid}\n", encoding="utf-8")
        code = process.wait()
    pid_file.unlink(missing_ok=True)
    if code == 0:
        log(event="executed command", output=directory)
    else:
        log(event="failed to execute command", error=f"exit status {code}", output=directory)
    return _tail(stdout), _tail(stderr)


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - MAX_TAIL))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _already_processed(seq: int, log: Log) -> bool:
    """The real handler's ``mrseq``: run each sequence number once."""
    mrseq = DATA_DIR / "mrseq"
    try:
        last = int(mrseq.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        last = -1
    if last >= seq:
        return True
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    mrseq.write_text(str(seq), encoding="utf-8")
    log(event="seqnum saved", path=mrseq)
    return False


def enable(handler: Handler, environ: Mapping[str, str], log: Log) -> int:
    seq = handler.seq(environ)
    log.with_seq(seq)
    log(event="start")
    if _already_processed(seq, log):
        log(
            event="exit",
            message="this script configuration is already processed, will not run again",
        )
        if read_status(handler, seq) == "transitioning":
            write_status(handler, seq, "Enable", "success", "Last script execution didn't finish.")
        return 0
    write_status(handler, seq, "Enable", "transitioning", "")
    try:
        log(event="reading configuration")
        settings = read_settings(handler, seq)
        log(event="validated configuration")
    except SettingsProblem as exc:
        log(event="failed to handle", error=f"failed to get configuration: {exc}")
        write_status(handler, seq, "Enable", "error", f"failed to get configuration: {exc}")
        strip_protected(handler, seq)
        return 3
    stdout, stderr = run(settings, DATA_DIR / "download" / str(seq), log)
    strip_protected(handler, seq)
    log(event="enabled")
    write_status(handler, seq, "Enable", "success", f"\n[stdout]\n{stdout}\n[stderr]\n{stderr}")
    log(event="end")
    return 0


def placeholder(handler: Handler, environ: Mapping[str, str]) -> int:
    """The shim's "Enable in progress" before the work starts, unless a status exists."""
    seq = handler.seq(environ)
    if not handler.status_file(seq).exists():
        write_status(handler, seq, "Enable", "transitioning", "")
    return 0


def main(
    argv: list[str], environ: Mapping[str, str] = os.environ, directory: Path | None = None
) -> int:
    """Run one operation in the handler directory (by default, the one above ``bin/``)."""
    operation = argv[0] if argv else ""
    directory = directory or Path(__file__).resolve().parent.parent
    try:
        handler = Handler.load(directory, environ)
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        print(f"failed to parse handlerenv: {exc}", flush=True)
        return FAIL_EXIT.get(operation, 3)
    log = Log(handler.version, operation)
    try:
        if operation == "placeholder":
            return placeholder(handler, environ)
        if operation == "enable":
            return enable(handler, environ, log)
        if operation == "install":
            DATA_DIR.mkdir(parents=True, exist_ok=True)
            log(event="created data dir", path=DATA_DIR)
            log(event="installed")
            return 0
        if operation == "uninstall":
            shutil.rmtree(DATA_DIR, ignore_errors=True)
            log(event="removed data dir", path=DATA_DIR)
            log(event="uninstalled")
            return 0
        if operation in ("update", "disable"):
            log(event="noop")
            seq = handler.seq(environ)
            write_status(handler, seq, operation.capitalize(), "success", "")
            return 0
    except SettingsProblem as exc:
        log(event="failed to handle", error=str(exc))
        return FAIL_EXIT.get(operation, 3)
    print(f"Incorrect command: {operation!r}", flush=True)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
