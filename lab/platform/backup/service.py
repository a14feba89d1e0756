"""The backup service: accepts backup requests, runs each job in its own thread.

A request first passes Azure's pre-checks (:mod:`.prechecks`); a refused request still
becomes a job, ``Failed`` with the pre-check's error, because that is how it appears in
the portal's job list. The check and the job's creation happen under one lock so two
simultaneous requests for one VM cannot both start; an accepted job takes its place in
the host's snapshot queue (:mod:`.slots`) under the same lock, so jobs get the host's
slots in the order they were started. On start-up, jobs a previous fabric left
``InProgress`` are failed: their worker died with it.

Requests come from a person ("Backup now", trigger ``OnDemand``) or from a backup
policy's schedule (trigger ``Scheduled``): the service keeps the policies and which VM
is on which (:mod:`.policy`, in the store) and runs their schedules in a thread
(:mod:`.scheduler`), started once there is a policy to run.
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
from lab.platform.backup.job import (
    TRIGGER_ON_DEMAND,
    TRIGGER_SCHEDULED,
    Job,
    abandon,
    new_job,
    reject,
)
from lab.platform.backup.policy import AzureClock, Policy, iso_minute
from lab.platform.backup.prechecks import PrecheckFacts, precheck
from lab.platform.backup.restore_point import RestorePoint
from lab.platform.backup.runner import OFFLINE_POWER_STATES, BackupTimings, JobRunner
from lab.platform.backup.scheduler import Scheduler
from lab.platform.backup.slots import HostSnapshotSlots
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
        slots: HostSnapshotSlots | None = None,
        run_schedules: bool = True,
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
        self.slots = slots or HostSnapshotSlots()
        self.azure_clock = AzureClock(clock, timings().time_scale)
        self.scheduler = Scheduler(store, self.azure_clock, self._start_scheduled)
        # Tests tick the scheduler themselves; the fabric runs it in a thread.
        self._run_schedules = run_schedules
        self._scheduler_stop = threading.Event()
        self._scheduler_thread: threading.Thread | None = None
        if store.policies():
            self._ensure_scheduler()

    def knows(self, vm: str) -> bool:
        return vm in self.vms

    def _require(self, vm: str) -> None:
        if not self.knows(vm):
            raise KeyError(f"no VM named {vm!r}")

    # ------------------------------------------------------------------ commands

    def start_backup(
        self, vm: str, *, trigger: str = TRIGGER_ON_DEMAND, policy: str | None = None
    ) -> Job:
        """Create a job; run it in a new thread unless a pre-check refuses it."""
        self._require(vm)
        with self._lock:
            now = self.clock.now()
            job = new_job(self._new_id(), vm, now, trigger=trigger, policy=policy)
            facts = PrecheckFacts(
                backup_in_progress=bool(self.store.in_progress(vm)),
                restore_points=self.store.count_restore_points(vm),
                agent_ready=self.agent.agent_ready(vm),
                vm_running=self.agent.power_state(vm) not in OFFLINE_POWER_STATES,
            )
            refusal = precheck(facts)
            if refusal is not None:
                job = reject(job, refusal, now)
            else:
                self.slots.enqueue(job.job_id)
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
            slots=self.slots,
        )
        self._spawn(f"backup-{job.job_id}", lambda: runner.run(job))
        log.info("backup job %s on %s started (%s)", job.job_id, vm, trigger)
        return job

    def _start_scheduled(self, vm: str, policy: str) -> Job:
        return self.start_backup(vm, trigger=TRIGGER_SCHEDULED, policy=policy)

    # ------------------------------------------------------------------ policies

    def set_policy(self, name: str, run_time: str) -> dict[str, Any]:
        """Create a policy or change its run time; raises PolicyError on bad input."""
        policy = Policy(name, run_time)
        self.store.save_policy(policy)
        log.info("policy %s: daily at %s (Azure clock, UTC)", policy.name, policy.run_time)
        self._ensure_scheduler()
        return self._policy_view(policy)

    def protect(self, vm: str, policy_name: str) -> dict[str, Any]:
        """Put a VM on a policy (Azure's "configure backup" / "change policy")."""
        self._require(vm)
        if self.store.policy(policy_name) is None:
            raise LookupError(f"no backup policy named {policy_name!r}")
        self.store.protect(vm, policy_name)
        log.info("%s is now protected by policy %s", vm, policy_name)
        return self.protection(vm)

    def unprotect(self, vm: str) -> dict[str, Any]:
        """Take a VM off its policy ("stop backup"): no more scheduled jobs for it."""
        self._require(vm)
        self.store.unprotect(vm)
        return self.protection(vm)

    def protection(self, vm: str) -> dict[str, Any]:
        self._require(vm)
        return {"vm": vm, "policy": self.store.policy_of(vm)}

    def policies(self) -> dict[str, Any]:
        """Every policy with its VMs and next run, and the Azure clock it runs on."""
        return {
            "azure_now": iso_minute(self.azure_clock.now()),
            "time_scale": self.azure_clock.scale,
            "host_snapshot_slots": self.slots.limit,
            "policies": [self._policy_view(p) for p in self.store.policies()],
        }

    def _policy_view(self, policy: Policy) -> dict[str, Any]:
        next_run = policy.next_run(self.azure_clock.now())
        return {
            "name": policy.name,
            "schedule_run_time": policy.run_time,
            "vms": self.store.protected_vms(policy.name),
            "next_run": iso_minute(next_run),
            "next_run_in_lab_seconds": round(self.azure_clock.lab_seconds_until(next_run), 2),
        }

    def _ensure_scheduler(self) -> None:
        if not self._run_schedules or self._scheduler_thread is not None:
            return
        self._scheduler_thread = threading.Thread(
            target=self.scheduler.run,
            args=(self._scheduler_stop,),
            name="backup-scheduler",
            daemon=True,
        )
        self._scheduler_thread.start()

    def stop_scheduler(self) -> None:
        self._scheduler_stop.set()

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
