"""The guest-side configuration the extension honours.

``/etc/azure/vmbackup.conf`` (section ``[SnapshotThread]``): ``timeout`` is the freeze
window in seconds (default 60) — here it bounds the consistency step, whose overrun is
reported as FailedRetryableFsFreezeTimeout; ``UploadStatusAndLog`` turns the status and
log blob uploads off unless it is exactly ``True`` (the real extension compares the
string). Other keys are logged, not used.

``/etc/waagent.conf``: ``HttpProxy.Host`` and ``HttpProxy.Port``, the agent's proxy,
which the extension uses for every storage call. Parsed the way the real extension's
copy of the agent library does: ``key=value`` lines, ``#`` comments, ``None`` = unset.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass, field
from pathlib import Path

SECTION = "SnapshotThread"
DEFAULT_FREEZE_TIMEOUT = 60


@dataclass(frozen=True)
class BackupConf:
    freeze_timeout: int = DEFAULT_FREEZE_TIMEOUT
    upload_status_and_log: bool = True
    values: dict[str, str] = field(default_factory=dict)
    problem: str | None = None

    @classmethod
    def load(cls, path: Path) -> BackupConf:
        if not path.is_file():
            return cls(problem=f"{path} not present: defaults apply")
        parser = configparser.ConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError) as exc:
            return cls(problem=f"cannot read {path}: {exc}: defaults apply")
        values = dict(parser.items(SECTION)) if parser.has_section(SECTION) else {}
        problem = None
        timeout = DEFAULT_FREEZE_TIMEOUT
        if values.get("timeout"):
            try:
                timeout = int(values["timeout"])
            except ValueError:
                problem = f"timeout={values['timeout']!r} is not a number: using 60"
        upload = values.get("uploadstatusandlog", "True") in ("", "True")
        return cls(timeout, upload, values, problem)


def read_agent_conf(path: Path) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return values
    for line in text.splitlines():
        if line.startswith("#") or "=" not in line or not line.split():
            continue
        key, _, value = line.split()[0].partition("=")
        value = value.strip('" ')
        values[key] = None if value == "None" else value
    return values


def agent_proxy(agent_conf: dict[str, str | None]) -> tuple[str | None, str | None]:
    """``(proxy URL, problem)`` from the agent's ``HttpProxy.Host``/``HttpProxy.Port``."""
    host, port = agent_conf.get("HttpProxy.Host"), agent_conf.get("HttpProxy.Port")
    if not host:
        return None, None
    if not port or not port.isdigit():
        return None, f"HttpProxy.Host={host} without a numeric HttpProxy.Port: proxy not used"
    return f"http://{host}:{port}", None
