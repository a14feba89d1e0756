"""The handler's own folders, as the agent describes them in ``HandlerEnvironment.json``.

The agent runs every command with the handler directory as cwd and writes
``HandlerEnvironment.json`` there; settings arrive as ``config/<seq>.settings`` and the
handler answers in ``status/<seq>.status``. The handler also keeps two small files of
its own next to them, as the real extension does: ``mrseq`` (the last sequence number
it enabled) and the last task id, so a repeated enable does not run a backup twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import protocol
from .log import ExtensionLog, log_prefix

SEQ_ENV = "ConfigSequenceNumber"
VERSION_ENV = "AZURE_GUEST_AGENT_EXTENSION_VERSION"
# HandlerEnvironment.json's own schema version, which the agent writes as 1.0; the real
# extension puts it (not the handler's version) in every log line's prefix.
DEFAULT_ENVIRONMENT_VERSION = "1.0"


class HandlerEnvironmentError(Exception):
    """``HandlerEnvironment.json`` is missing or unreadable: nowhere to log or report."""


@dataclass(frozen=True)
class HandlerContext:
    handler_dir: Path
    name: str
    version: str
    log_folder: Path
    config_folder: Path
    status_folder: Path
    environment_version: str = DEFAULT_ENVIRONMENT_VERSION

    @classmethod
    def load(cls, handler_dir: Path, environ: Mapping[str, str] = os.environ) -> HandlerContext:
        path = handler_dir / "HandlerEnvironment.json"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(doc, list):
                doc = doc[0]
            env = doc["handlerEnvironment"]
            return cls(
                handler_dir=handler_dir,
                name=str(doc.get("name") or protocol.HANDLER_NAME),
                version=_handler_version(handler_dir, environ),
                log_folder=Path(env["logFolder"]),
                config_folder=Path(env["configFolder"]),
                status_folder=Path(env["statusFolder"]),
                environment_version=str(doc.get("version") or DEFAULT_ENVIRONMENT_VERSION),
            )
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise HandlerEnvironmentError(f"cannot use {path}: {exc}") from exc

    @property
    def extension_log(self) -> Path:
        return self.log_folder / "extension.log"

    def log(self) -> ExtensionLog:
        """A writer for ``extension.log`` with the real extension's line prefix."""
        return ExtensionLog(self.extension_log, log_prefix(self.name, self.environment_version))

    def settings_file(self, seq: int) -> Path:
        return self.config_folder / f"{seq}.settings"

    def status_file(self, seq: int) -> Path:
        return self.status_folder / f"{seq}.status"

    def current_seq(self, environ: Mapping[str, str] = os.environ) -> int | None:
        """The sequence number to act on: the agent's ``ConfigSequenceNumber`` when it
        exports one, else the newest ``<seq>.settings`` (by mtime, then by number)."""
        if self.seq_from_environment(environ):
            return int(environ[SEQ_ENV].strip())
        newest: tuple[float, int] | None = None
        for path in self.config_folder.glob("*.settings"):
            if path.stem.isdigit():
                key = (path.stat().st_mtime, int(path.stem))
                newest = key if newest is None or key > newest else newest
        return None if newest is None else newest[1]

    @staticmethod
    def seq_from_environment(environ: Mapping[str, str] = os.environ) -> bool:
        """Whether the agent exported a usable ``ConfigSequenceNumber``."""
        exported = environ.get(SEQ_ENV, "").strip()
        return exported.lstrip("-").isdigit() and int(exported) >= 0

    def set_aside_other_files(self, seq: int) -> list[str]:
        """Rename other sequence numbers' ``N.settings``/``N.status`` to ``N_settings``/
        ``N_status`` (what the real extension leaves behind), so only the current pair
        keeps its agent-visible name. Returns the renamed file names."""
        renamed = []
        for folder, suffix in ((self.config_folder, ".settings"), (self.status_folder, ".status")):
            for path in sorted(folder.glob(f"*{suffix}")):
                if path.name != f"{seq}{suffix}" and path.stem.isdigit():
                    try:
                        path.rename(path.with_name(path.name.replace(".", "_")))
                        renamed.append(path.name)
                    except OSError:
                        continue
        return renamed

    # The handler's own memory of what it already did (files in the handler dir).

    def last_seq(self) -> int | None:
        return _read_int(self.handler_dir / "mrseq")

    def save_seq(self, seq: int) -> None:
        (self.handler_dir / "mrseq").write_text(str(seq), encoding="utf-8")

    def last_task_id(self) -> str | None:
        try:
            return (self.handler_dir / "task_identity").read_text(encoding="utf-8")
        except OSError:
            return None

    def save_task_id(self, task_id: str) -> None:
        (self.handler_dir / "task_identity").write_text(task_id, encoding="utf-8")


def _handler_version(handler_dir: Path, environ: Mapping[str, str]) -> str:
    """The handler's version: the agent's environment, else ``<Name>-<version>`` dir."""
    exported = environ.get(VERSION_ENV)
    if exported:
        return exported
    _, dash, version = handler_dir.resolve().name.rpartition("-")
    return version if dash else "unknown"


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
