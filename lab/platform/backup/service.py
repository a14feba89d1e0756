"""The backup service: accepts backup requests, runs each job in its own thread.

A request first passes Azure's pre-checks (:mod:`.prechecks`); a refused request still
becomes a job, ``Failed`` with the pre-check's error, because that is how it appears in
the portal's job list. The check and the job's creation happen under one lock so two
simultaneous requests for one VM cannot both start. On start-up, jobs a previous fabric
left ``InProgress`` are failed: their worker died with it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from lab.platform.backup import codes
from lab.platform.backup.agent import AgentChannel
from lab.platform.backup.job import Job, abandon, new_job, reject
from lab.platform.backup.prechecks import PrecheckFacts, precheck
from lab.platform.backup.restore_point import RestorePoint
from lab.platform.backup.runner import BackupTimings, JobRunner
from lab.platform.backup.storage import BackupStorage, Disk
from lab.platform.backup.store import BackupStore
from lab.platform.clock import Clock

log = logging.getLogger(__name__)

Spawn = Callable[[str, Callable[[], object]], None]


def spawn_thread(name: str, target: Callable[[], object]) -> None:
    """Run ``target`` in a daemon thread (a job must not keep the fabric from exiting)."""
    threading.Thread(target=target, name=name, daemon=True).start()


class BackupService:
    """Jobs and restore points for the VMs of one lab."""

    def __init__(
        self,
        *,
        vms: Iterable[str],
        store: BackupStore,
        storage: BackupStorage,
        agent: AgentChannel,
        clock: Clock,
        timings: Callable[[], BackupTimings] = BackupTimings.current,
        spawn: Spawn = spawn_thread,
        sleep: Callable[[float], object] = time.sleep,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.vms = frozenset(vms)
        self.store = store
        self.storage = storage
        self.agent = agent
        self.clock = clock
        self._timings = timings
        self._spawn = spawn
        self._sleep = sleep
        self._new_id = new_id
        self._lock = threading.Lock()

    def knows(self, vm: str) -> bool:
        return vm in self.vms

    def _require(self, vm: str) -> None:
        if not self.knows(vm):
            raise KeyError(f"no VM named {vm!r}")

    # ------------------------------------------------------------------ commands

    def start_backup(self, vm: str) -> Job:
        """Create a job; run it in a new thread unless a pre-check refuses it."""
        self._require(vm)
        with self._lock:
            now = self.clock.now()
            job = new_job(self._new_id(), vm, now)
            facts = PrecheckFacts(
                backup_in_progress=bool(self.store.in_progress(vm)),
                restore_points=self.store.count_restore_points(vm),
                agent_ready=self.agent.agent_ready(vm),
            )
            refusal = precheck(facts)
            if refusal is not None:
                job = reject(job, refusal, now)
            self.store.save_job(job)
        if refusal is not None:
            log.info("backup of %s refused: %s", vm, refusal.code)
            return job
        runner = JobRunner(
            store=self.store,
            storage=self.storage,
            agent=self.agent,
            clock=self.clock,
            sleep=self._sleep,
            timings=self._timings(),
            new_id=self._new_id,
        )
        self._spawn(f"backup-{job.job_id}", lambda: runner.run(job))
        log.info("backup job %s on %s started", job.job_id, vm)
        return job

    def recover_interrupted(self) -> list[Job]:
        """Fail every job a previous fabric left InProgress; returns them."""
        failed = []
        for job in self.store.in_progress():
            ended = abandon(
                job,
                codes.BACKUP_OPERATION_FAILED,
                self.clock.now(),
                {"reason": "the fabric restarted while the job ran"},
            )
            self.store.save_job(ended)
            failed.append(ended)
            log.warning("backup job %s on %s: failed, fabric restarted", job.job_id, job.vm)
        return failed

    # ------------------------------------------------------------------ queries

    def job(self, job_id: str) -> Job | None:
        return self.store.job(job_id)

    def jobs(self, vm: str | None = None) -> list[Job]:
        if vm is not None:
            self._require(vm)
        return self.store.jobs(vm)

    def restore_points(self, vm: str) -> list[RestorePoint]:
        self._require(vm)
        return self.store.restore_points(vm)

    def disks(self, vm: str) -> list[Disk]:
        self._require(vm)
        return self.storage.disks(vm)

    def storage_status(self) -> dict[str, Any]:
        return {"ready": self.storage.ready(), "account_url": self.storage.account_url}
