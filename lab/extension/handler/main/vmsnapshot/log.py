"""``extension.log``: what a support engineer reads to learn what one backup did.

Every line carries a UTC timestamp, a level, the process id and the task id, so the
enable command's lines and its detached worker's lines can be told apart and a task
followed from settings to verdict. Lines are appended one open/close at a time (the
worker and a later enable may write concurrently) and also kept in memory for the
optional upload to ``logsBlobUri``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path


class ExtensionLog:
    def __init__(self, path: Path | None, task_id: str = "") -> None:
        self.path = path
        self.task_id = task_id
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self._write("Info", message)

    def warning(self, message: str) -> None:
        self._write("Warning", message)

    def error(self, message: str) -> None:
        self._write("Error", message)

    def text(self) -> str:
        return "".join(self.lines)

    def _write(self, level: str, message: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        task = f" [task {self.task_id}]" if self.task_id else ""
        line = f"{stamp} {level:<7} [pid {os.getpid()}]{task} {message}\n"
        self.lines.append(line)
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
        except OSError:
            pass  # logging must never be why a backup fails
