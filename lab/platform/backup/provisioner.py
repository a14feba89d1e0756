"""Creates the lab's containers and disks once storage answers.

Azurite and the fabric start together and Azurite may take a few seconds (or, on a
slow machine, much longer) to listen; the fabric must not wait for it before serving
the guests. So the layout is built in a background thread that retries until it
succeeds or the fabric stops. Jobs check ``storage.ready()`` before they start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Protocol

from lab.platform.backup.storage import StorageError

log = logging.getLogger(__name__)


class LayoutTarget(Protocol):
    def ensure_layout(self, vms: Iterable[str]) -> None: ...


class StorageProvisioner:
    """Retries ``target.ensure_layout(vms)`` every ``retry_seconds`` until it works."""

    def __init__(
        self,
        target: LayoutTarget,
        vms: Iterable[str],
        stop: threading.Event,
        *,
        retry_seconds: float = 2.0,
    ) -> None:
        self.target = target
        self.vms = tuple(vms)
        self.stop = stop
        self.retry_seconds = retry_seconds
        self.done = threading.Event()
        self._last_error: str | None = None
        self.thread = threading.Thread(target=self.run, name="storage-layout", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def attempt(self) -> bool:
        """One try; logs the failure (once per distinct message) and returns success."""
        try:
            self.target.ensure_layout(self.vms)
        except StorageError as exc:
            message = str(exc)
            if message != self._last_error:
                log.warning("storage not ready yet (will retry): %s", message)
                self._last_error = message
            return False
        return True

    def run(self) -> None:
        while not self.stop.is_set():
            if self.attempt():
                log.info("storage ready: containers and %d OS disk(s) in place", len(self.vms))
                self.done.set()
                return
            self.stop.wait(self.retry_seconds)
