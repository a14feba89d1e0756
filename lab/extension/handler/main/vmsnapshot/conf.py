"""The guest-side configuration the extension honours.

``/etc/azure/vmbackup.conf`` (section ``[SnapshotThread]``), values in Azure seconds as
the real extension reads them (the worker puts them on the task's clock with
:mod:`.durations`): ``SafeFreezeWaitInSeconds`` (default 66) is how long the extension
waits for the file systems to be frozen — here it bounds the consistency step, whose
overrun is FailedRetryableFsFreezeTimeout (122); ``timeout`` (default 60) is how long the
freeze holds before it thaws by itself — snapshots still running then are inconsistent.
``UploadStatusAndLog`` turns the status and log blob uploads off unless it is exactly
``True`` (the real extension compares the string). Other keys are logged, not used.

``/etc/waagent.conf``: ``HttpProxy.Host`` and ``HttpProxy.Port``, the agent's proxy,
which the extension uses for every storage call. Parsed the way the real extension's
copy of the agent library does: ``key=value`` lines, ``#`` comments, ``None`` = unset.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass, field
from pathlib import Path

from . import durations

SECTION = "SnapshotThread"
DEFAULT_FREEZE_TIMEOUT = int(durations.FREEZE_TIMEOUT.azure_seconds)  # 60
DEFAULT_SAFE_FREEZE_WAIT = int(durations.SAFE_FREEZE_WAIT.azure_seconds)  # 66


@dataclass(frozen=True)
class BackupConf:
    freeze_timeout: int = DEFAULT_FREEZE_TIMEOUT  # Azure seconds
    upload_status_and_log: bool = True
    values: dict[str, str] = field(default_factory=dict)
    problem: str | None = None
    safe_freeze_wait: int = DEFAULT_SAFE_FREEZE_WAIT  # Azure seconds

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
        problems: list[str] = []
        timeout = _int_value(values, "timeout", DEFAULT_FREEZE_TIMEOUT, problems)
        wait = _int_value(values, "safefreezewaitinseconds", DEFAULT_SAFE_FREEZE_WAIT, problems)
        upload = values.get("uploadstatusandlog", "True") in ("", "True")
        return cls(timeout, upload, values, "; ".join(problems) or None, wait)


def _int_value(values: dict[str, str], key: str, default: int, problems: list[str]) -> int:
    """An integer key (configparser lower-cases key names), or the default and why."""
    raw = values.get(key)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        problems.append(f"{key}={raw!r} is not a number: using {default}")
        return default


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
