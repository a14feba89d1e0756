"""``extension.log`` and the logs blob, in the shapes the real VMSnapshotLinux writes.

A support engineer greps a real VM's log with the real extension's shapes in mind, so
the lab writes the same ones (Azure/azure-linux-extensions, ``VMBackup/main``):

- A line of ``extension.log`` (``Utils/HandlerUtil.py``, the Python 3 path of ``log``):
  ``str(utcnow())``, a space, ``[<name>-<HandlerEnvironment version>]`` and the message
  with no separator and no level — under Python 3 the real extension writes no level to
  the file. The version is ``HandlerEnvironment.json``'s own (the agent writes ``1.0``),
  so real lines read ``... [Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0]T:S ...``.
- While the file systems are frozen (``backuplogger.py``), nothing is written: lines are
  kept as ``2026/12/07 07:30:01.123456  Info  message `` and written as one block between
  the "Logs during Freeze Start" and "Logs during Freeze End" banners once the freeze
  ends, so what happened during a freeze shows up only after the thaw.
- The logs blob (``backuplogger.py``'s upload of the handler's message buffer): every
  line with its level, ``2026-12-07 07:30:01.123456  Info  message ``.

The file is appended one open/close at a time (the worker and a later enable may write
concurrently); logging never fails a backup.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

FREEZE_START_BANNER = "================== Logs during Freeze Start =============="
FREEZE_END_BANNER = "================== Logs during Freeze End =============="


def log_prefix(name: str, environment_version: str) -> str:
    """``[<name>-<version>]``: what the real extension puts before every message."""
    return f"[{name}-{environment_version}]"


def _stamp(now: datetime) -> str:
    """``str(datetime.utcnow())`` with the microseconds always shown."""
    return now.isoformat(sep=" ", timespec="microseconds")


class ExtensionLog:
    def __init__(self, path: Path | None, prefix: str = "") -> None:
        self.path = path
        self.prefix = prefix
        self.lines: list[str] = []  # the logs blob's copy, with levels
        self._frozen: list[str] | None = None

    def info(self, message: str) -> None:
        self._write("Info", message)

    def warning(self, message: str) -> None:
        self._write("Warning", message)

    def error(self, message: str) -> None:
        self._write("Error", message)

    def text(self) -> str:
        """What goes to the logs blob."""
        return "".join(self.lines)

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Hold the file's lines while the file systems are frozen; write them as one
        block when the freeze ends (also when it ends by an exception)."""
        if self._frozen is not None:  # already frozen: the outer block writes them
            yield
            return
        self._frozen = [FREEZE_START_BANNER + "\n"]
        try:
            yield
        finally:
            block = "".join(self._frozen) + FREEZE_END_BANNER
            self._frozen = None
            self._append(self._file_line(datetime.now(UTC).replace(tzinfo=None), block))

    def _write(self, level: str, message: str) -> None:
        now = datetime.now(UTC).replace(tzinfo=None)
        self.lines.append(f"{_stamp(now)}  {level}  {message} \n")
        if self._frozen is not None:
            self._frozen.append(f"{now.strftime('%Y/%m/%d %H:%M:%S.%f')}  {level}  {message} \n")
            return
        self._append(self._file_line(now, message))

    def _file_line(self, now: datetime, message: str) -> str:
        return f"{_stamp(now)} {self.prefix}{message}\n"

    def _append(self, text: str) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(text)
        except OSError:
            pass  # logging must never be why a backup fails
