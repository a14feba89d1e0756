"""The platform's power state of each VM: the one record every part of the lab reads.

Azure's ``PowerState`` is the platform's view of a VM. It changes for two reasons, and
so does this record:

- **the platform acts** (power off, start, restart through ARM): the ARM twin records
  the outcome with :meth:`PowerStates.set` once the operation is done;
- **the host sees the guest OS halt** (``poweroff``/``shutdown -h`` inside the VM): the
  VM stays allocated but no longer runs, which Azure shows as ``PowerState/stopped``
  ("This can be result of invoking the PowerOff API operation or invoking shutdown from
  within the guest OS"). The host's report arrives through :meth:`PowerStates.observe_halt`
  (see :mod:`lab.platform.host_power`). A reboot inside the guest is not a halt: the
  VM stays ``running``, and no report is made.

The ARM twin's instance view, ``snaplab status`` and the backup service (whose offline
backup of a stopped VM depends on it) all read this record, so they cannot disagree.

A VM's view can be made **stale** (:meth:`PowerStates.set_stale`): the platform then
drops the host's reports about it and keeps showing what it last knew. That is the
anomaly of Microsoft's 2016 troubleshooting article ("status not reflected correctly"
after a shutdown from inside), kept as an explicit platform fault. The platform's own
power operations refresh the view: :meth:`PowerStates.set` clears the staleness.

Runs in the fabric's container on Debian's Python: stdlib only.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Where the fabric keeps the power states (its data volume survives a restart).
DEFAULT_POWER_FILE = Path("/var/lib/snaplab/power.json")

POWER_RUNNING = "running"
POWER_STOPPED = "stopped"
# Deallocated through ARM: the VM no longer holds a host (nothing runs, nothing is billed
# for compute); only starting it again brings it back.
POWER_DEALLOCATED = "deallocated"
# The states the platform settles in; "starting", "stopping" and "deallocating" only exist
# while an ARM operation runs, and the ARM twin shows those from its own operations.
POWER_STATES = (POWER_RUNNING, POWER_STOPPED, POWER_DEALLOCATED)
# The states in which no OS runs, so the host has no halt to report.
_NOT_RUNNING = (POWER_STOPPED, POWER_DEALLOCATED)


@dataclass(frozen=True)
class HaltOutcome:
    """What the platform made of a host's report that a VM's OS halted."""

    power_state: str  # the platform's power state after the report
    taken: bool  # False when the VM's view is stale and the report was dropped


class PowerStates:
    """The platform power state of each VM, optionally kept in a JSON file.

    Every VM starts ``running`` (``up`` allocates and starts it). A file, when given,
    keeps the states across fabric restarts, so a stopped VM is still stopped after
    one; it is written whole and replaced atomically, and an unreadable file is logged
    and ignored (a lost power state must not stop the fabric). Staleness is kept in
    memory only: a restarted fabric has a fresh view of its VMs.
    """

    def __init__(self, names: Iterable[str], path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._path = path
        self._states = dict.fromkeys(names, POWER_RUNNING)
        self._stale: set[str] = set()
        for name, state in self._load().items():
            if name in self._states:
                self._states[name] = state

    def _load(self) -> dict[str, str]:
        if self._path is None or not self._path.exists():
            return {}
        try:
            raw = json.loads(self._path.read_text())
        except (OSError, ValueError) as exc:
            log.error("ignoring unreadable power states in %s: %s", self._path, exc)
            return {}
        if not isinstance(raw, dict):
            log.error("ignoring power states in %s: not a JSON object", self._path)
            return {}
        return {str(k): v for k, v in raw.items() if v in POWER_STATES}

    def get(self, name: str) -> str | None:
        with self._lock:
            return self._states.get(name)

    def set(self, name: str, state: str) -> str:
        """Record what a platform power operation left the VM in; returns it.

        The platform acted on the VM itself, so its view of the VM is fresh again."""
        if state not in POWER_STATES:
            raise ValueError(f"power state must be one of {', '.join(POWER_STATES)}, got {state!r}")
        with self._lock:
            self._require(name)
            self._states[name] = state
            self._stale.discard(name)
            self._save()
        return state

    def observe_halt(self, name: str) -> HaltOutcome:
        """The host saw the VM's OS halt: the VM is ``stopped`` (still allocated),
        unless the platform's view of it is stale. A VM the platform already stopped or
        deallocated keeps its state (its container ending is the platform's own doing)."""
        with self._lock:
            self._require(name)
            if name in self._stale:
                return HaltOutcome(self._states[name], taken=False)
            if self._states[name] not in _NOT_RUNNING:
                self._states[name] = POWER_STOPPED
                self._save()
                log.info("%s: the guest OS halted; power state stopped", name)
            return HaltOutcome(self._states[name], taken=True)

    def is_stale(self, name: str) -> bool:
        with self._lock:
            self._require(name)
            return name in self._stale

    def set_stale(self, name: str, stale: bool) -> bool:
        """Make the platform's view of a VM stale (host reports dropped) or fresh."""
        with self._lock:
            self._require(name)
            if stale:
                self._stale.add(name)
            else:
                self._stale.discard(name)
        log.warning("%s: the platform's power view is %s", name, "stale" if stale else "fresh")
        return stale

    def _require(self, name: str) -> None:
        if name not in self._states:
            raise KeyError(f"no VM named {name!r}")

    def _save(self) -> None:
        """Write the file; called with the lock held, so writes never interleave."""
        if self._path is None:
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.with_name(f".{self._path.name}.tmp")
            tmp.write_text(json.dumps(self._states, indent=2, sort_keys=True))
            os.replace(tmp, self._path)
        except OSError as exc:
            log.error("cannot keep power states in %s: %s", self._path, exc)
