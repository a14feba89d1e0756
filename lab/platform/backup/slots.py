"""The host's snapshot slots: the lab's model of a host busy with too many snapshots.

Microsoft's scale guidance is to start no more than 4 VM backups together per host
(cloud service); it publishes no limit or queue behind that advice. This module is the
lab's model of why the advice exists: the host works on at most 4 snapshots at once,
first come first served, and the rest wait. Nothing outside the backup service may rely
on the number (the schedule-storm check observes jobs that waited, not slots).

The lab's VMs all share one host (the fabric), so one :class:`HostSnapshotSlots` serves
a whole lab. A job takes its place in the queue when it is accepted (so the order is
the order in which jobs were started, never a race between their threads), holds a slot
from the moment its snapshot is sent to the VM until the host has finished with it, and
a queued job's sub-task timeout keeps running while it waits, which is how a schedule
that starts too many VMs at once ends in "Snapshot VM sub-task timed out".

Pure bookkeeping behind a lock: no clock, no sleeping. The runner polls
:meth:`HostSnapshotSlots.holds` with its own (injectable) clock and sleep.
"""

from __future__ import annotations

import threading

# The lab's model: as many snapshots at once as Microsoft's guidance starts together.
HOST_SNAPSHOT_SLOTS = 4


class HostSnapshotSlots:
    """A FIFO queue in which the first ``limit`` entries hold a slot."""

    def __init__(self, limit: int = HOST_SNAPSHOT_SLOTS) -> None:
        if limit < 1:
            raise ValueError(f"a host needs at least one snapshot slot, got {limit}")
        self.limit = limit
        self._lock = threading.Lock()
        self._queue: list[str] = []

    def enqueue(self, job_id: str) -> int:
        """Queue a job (idempotent); returns its 0-based position."""
        with self._lock:
            if job_id not in self._queue:
                self._queue.append(job_id)
            return self._queue.index(job_id)

    def holds(self, job_id: str) -> bool:
        """True once the job is among the first ``limit`` in the queue."""
        with self._lock:
            return job_id in self._queue[: self.limit]

    def position(self, job_id: str) -> int | None:
        """How many jobs are ahead of this one (None if it is not queued)."""
        with self._lock:
            return self._queue.index(job_id) if job_id in self._queue else None

    def release(self, job_id: str) -> None:
        """Leave the queue (holding or waiting); unknown jobs are ignored."""
        with self._lock:
            if job_id in self._queue:
                self._queue.remove(job_id)

    def busy(self) -> list[str]:
        """The jobs holding a slot now, oldest first."""
        with self._lock:
            return list(self._queue[: self.limit])

    def waiting(self) -> list[str]:
        """The jobs waiting for a slot, in the order they will get one."""
        with self._lock:
            return list(self._queue[self.limit :])
