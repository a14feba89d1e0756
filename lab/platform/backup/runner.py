"""Runs one backup job: "Take Snapshot", then "Transfer data to vault".

Take Snapshot does what Azure Backup does. First the job waits for one of the host's
snapshot slots (:mod:`.slots`: at most 4 VMs at a time, first come first served).
Holding it, for a VM the platform runs: new task id and SAS URLs, new settings for the
VMSnapshot extension in the goal state (sequence number + 1, which bumps the
incarnation), then it waits for the *agent* to report the handler's terminal status for
that sequence number. It believes only what the agent reports and what storage shows: a
success must name a snapshot of every disk and each snapshot must exist. For a VM the
platform has stopped, the host snapshots the disks itself (crash consistent, no agent).
Either way the host then does its own work on the snapshot (``HOST_SNAPSHOT_WORK``)
before it gives the slot back. All of it, the wait for a slot included, must fit in
``SNAPSHOT_SUBTASK_TIMEOUT``. Transfer copies each snapshot into the vault and leaves a
restore point. Every step is saved, so the control API shows progress, and anything
unexpected ends the job ``BackUpOperationFailed`` rather than leaving it InProgress.

Storage, agent, clock and sleep are injected so the whole flow runs in unit tests
without threads, storage or waiting.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from lab.extension.protocol import DiskSnapshot, ProtectedSettings, PublicSettings
from lab.platform.backup import codes
from lab.platform.backup.agent import AgentChannel, HandlerReport
from lab.platform.backup.disks import DISK_CONTAINER, vault_blob_name
from lab.platform.backup.job import (
    TAKE_SNAPSHOT,
    TRANSFER_TO_VAULT,
    Job,
    JobStatus,
    abandon,
    complete_subtask,
    fail_subtask,
    start_subtask,
    with_task,
)
from lab.platform.backup.restore_point import (
    APPLICATION_CONSISTENT,
    CRASH_CONSISTENT,
    FILE_SYSTEM_CONSISTENT,
    RestorePoint,
    RestorePointDisk,
)
from lab.platform.backup.slots import HostSnapshotSlots
from lab.platform.backup.storage import BackupStorage, Disk, StorageError
from lab.platform.backup.store import BackupStore
from lab.platform.clock import Clock
from lab.platform.timescale import (
    BACKUP_SAS_EXPIRY,
    HOST_SNAPSHOT_WORK,
    SNAPSHOT_SUBTASK_TIMEOUT,
    time_scale,
)

log = logging.getLogger(__name__)

# How often a job looks at the agent's latest report: the report lives in memory, so
# this only bounds how late a job notices the terminal status (lab seconds, unscaled).
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class BackupTimings:
    """The lab durations of one job, fixed when it starts (the scale may change)."""

    time_scale: float
    subtask_timeout: float
    sas_expiry: float
    poll_seconds: float = POLL_SECONDS
    host_snapshot_work: float = 0.0

    @classmethod
    def current(cls) -> BackupTimings:
        scale = time_scale()
        return cls(
            time_scale=scale,
            subtask_timeout=SNAPSHOT_SUBTASK_TIMEOUT.lab_seconds(scale),
            sas_expiry=BACKUP_SAS_EXPIRY.lab_seconds(scale),
            host_snapshot_work=HOST_SNAPSHOT_WORK.lab_seconds(scale),
        )


class _JobFailed(Exception):
    """Ends the running sub-task with an Azure error (internal control flow)."""

    def __init__(self, error: codes.JobError, detail: Mapping[str, Any]) -> None:
        super().__init__(error.code)
        self.error = error
        self.detail = detail


# The extension's success codes and the consistency Azure records for each.
_CONSISTENCY_BY_CODE = {0: APPLICATION_CONSISTENT, 1: FILE_SYSTEM_CONSISTENT}
OFFLINE_POWER_STATES = ("stopped", "deallocated")


@dataclass(frozen=True)
class _Snapshots:
    """What Take Snapshot hands to the transfer: each disk's snapshot, and how
    consistent they are."""

    disks: tuple[tuple[Disk, str], ...]
    consistency: str


def _blob_path(url: str) -> str:
    """``<container>/<blob>`` of a blob URL, ignoring host, account and query, so a
    snapshot reported through another host name still matches its disk."""
    parts = urlsplit(url).path.strip("/").split("/")
    return "/".join(parts[-2:])


class JobRunner:
    """Drives one job to its end. Not thread-bound: the service gives each its own."""

    def __init__(
        self,
        *,
        store: BackupStore,
        storage: BackupStorage,
        agent: AgentChannel,
        clock: Clock,
        sleep: Callable[[float], object],
        timings: BackupTimings,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        slots: HostSnapshotSlots | None = None,
    ) -> None:
        self.store = store
        self.storage = storage
        self.agent = agent
        self.clock = clock
        self.sleep = sleep
        self.timings = timings
        self.new_id = new_id
        # A runner on its own (tests) has a host to itself.
        self.slots = slots or HostSnapshotSlots()

    def run(self, job: Job) -> Job:
        """Run both sub-tasks; always returns (and has saved) a finished job."""
        try:
            job, snapshots = self._take_snapshot(job)
            if job.status is JobStatus.IN_PROGRESS and snapshots is not None:
                job = self._transfer(job, snapshots)
        except Exception as exc:
            log.exception("backup job %s on %s: unexpected error", job.job_id, job.vm)
            latest = self.store.job(job.job_id) or job  # where it had got to
            job = abandon(
                latest, codes.BACKUP_OPERATION_FAILED, self.clock.now(), {"reason": repr(exc)}
            )
            self.store.save_job(job)
        finally:
            self.slots.release(job.job_id)
        return job

    def _save(self, job: Job) -> Job:
        self.store.save_job(job)
        return job

    def _fail(self, job: Job, name: str, failure: _JobFailed) -> Job:
        log.info("backup job %s on %s: %s %s", job.job_id, job.vm, name, failure.error.code)
        return self._save(fail_subtask(job, name, failure.error, self.clock.now(), failure.detail))

    # ------------------------------------------------------------------ Take Snapshot

    def _take_snapshot(self, job: Job) -> tuple[Job, _Snapshots | None]:
        job = self._save(start_subtask(job, TAKE_SNAPSHOT, self.clock.now()))
        deadline = self.clock.monotonic() + self.timings.subtask_timeout
        self.slots.enqueue(job.job_id)
        try:
            if not self.storage.ready():
                raise _JobFailed(codes.BACKUP_OPERATION_FAILED, {"reason": "storage not ready"})
            disks = self.storage.disks(job.vm)
            self._await_slot(job, deadline)
            if self.agent.power_state(job.vm) in OFFLINE_POWER_STATES:
                snapshots = self._offline_snapshots(job, disks)
            else:
                job, task_id, seq_no = self._send_settings(job, disks)
                report = self._await_terminal(job.vm, seq_no, deadline)
                snapshots = self._verified_snapshots(task_id, disks, report)
            self._host_work(job, deadline)
        except _JobFailed as failure:
            return self._fail(job, TAKE_SNAPSHOT, failure), None
        finally:
            self.slots.release(job.job_id)
        return self._save(complete_subtask(job, TAKE_SNAPSHOT, self.clock.now())), snapshots

    def _timed_out(self, reason: str, **detail: Any) -> _JobFailed:
        return _JobFailed(
            codes.GUEST_AGENT_SNAPSHOT_TASK_STATUS_ERROR, {"reason": reason, **detail}
        )

    def _await_slot(self, job: Job, deadline: float) -> None:
        """Wait, first come first served, for one of the host's snapshot slots."""
        waited_behind = self.slots.position(job.job_id)
        if not self.slots.holds(job.job_id):
            log.info(
                "backup job %s on %s: queued for a host snapshot slot behind %s job(s)",
                job.job_id,
                job.vm,
                waited_behind,
            )
        while not self.slots.holds(job.job_id):
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                # What the host was busy with is the platform's business (its log),
                # not the job document's: Azure's job says only that the sub-task timed out.
                log.info(
                    "backup job %s on %s: still queued for one of the host's %d snapshot "
                    "slots at the sub-task timeout (%d job(s) were ahead of it)",
                    job.job_id,
                    job.vm,
                    self.slots.limit,
                    waited_behind,
                )
                raise self._timed_out(
                    f"the snapshot sub-task did not finish within "
                    f"{self.timings.subtask_timeout:g} lab seconds"
                )
            self.sleep(min(self.timings.poll_seconds, remaining))

    def _offline_snapshots(self, job: Job, disks: Sequence[Disk]) -> _Snapshots:
        """A stopped VM: the host snapshots its disks directly (crash consistent)."""
        taken = []
        for disk in disks:
            try:
                taken.append((disk, self.storage.snapshot_disk(disk)))
            except StorageError as exc:
                raise _JobFailed(codes.BACKUP_OPERATION_FAILED, {"reason": str(exc)}) from exc
        log.info(
            "backup job %s on %s: VM stopped, %d disk(s) snapshotted offline",
            job.job_id,
            job.vm,
            len(taken),
        )
        return _Snapshots(tuple(taken), CRASH_CONSISTENT)

    def _host_work(self, job: Job, deadline: float) -> None:
        """The host's own work on the snapshot, done while it holds the slot."""
        finish = self.clock.monotonic() + self.timings.host_snapshot_work
        while (remaining := finish - self.clock.monotonic()) > 0:
            if self.clock.monotonic() >= deadline:
                raise self._timed_out(
                    f"the host's work on the snapshot ran past the sub-task timeout of "
                    f"{self.timings.subtask_timeout:g} lab seconds"
                )
            self.sleep(min(self.timings.poll_seconds, remaining))

    def _next_seq_no(self, vm: str) -> int:
        known = [
            n for n in (self.agent.current_seq_no(vm), self.store.max_seq_no(vm)) if n is not None
        ]
        return max(known) + 1 if known else 0

    def _send_settings(self, job: Job, disks: Sequence[Disk]) -> tuple[Job, str, int]:
        now = self.clock.now()
        expiry = now + timedelta(seconds=self.timings.sas_expiry)
        task_id = self.new_id()
        seq_no = self._next_seq_no(job.vm)
        public = PublicSettings(
            task_id=task_id, command_start=now, time_scale=self.timings.time_scale
        )
        protected = ProtectedSettings(
            disk_sas_uris=tuple(self.storage.disk_sas_url(d, expiry) for d in disks),
            status_blob_uri=self.storage.status_blob_sas_url(job.vm, task_id, expiry),
        )
        # Saved before publishing: a restart must never reuse a number the agent saw.
        job = self._save(with_task(job, task_id, seq_no))
        incarnation = self.agent.push_settings(
            job.vm, seq_no, public.to_json(), protected.to_json()
        )
        log.info(
            "backup job %s on %s: task %s sent as seqNo %d (incarnation %s)",
            job.job_id,
            job.vm,
            task_id,
            seq_no,
            incarnation,
        )
        return job, task_id, seq_no

    def _await_terminal(self, vm: str, seq_no: int, deadline: float) -> HandlerReport:
        """The agent's terminal report for this sequence number, or the timeout."""
        last: HandlerReport | None = None
        while True:
            report = self.agent.handler_report(vm)
            if report is not None and report.sequence_number == seq_no:
                last = report
                if report.terminal:
                    return report
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                raise self._timed_out(
                    f"no terminal extension status for sequence number {seq_no} within "
                    f"{self.timings.subtask_timeout:g} lab seconds",
                    last_extension_status=last.status if last else None,
                )
            self.sleep(min(self.timings.poll_seconds, remaining))

    def _verified_snapshots(
        self, task_id: str, disks: Sequence[Disk], report: HandlerReport
    ) -> _Snapshots:
        extension = {"extension_code": report.code, "extension_message": report.message}
        if report.status != "success":
            raise _JobFailed(codes.for_extension_code(report.code), extension)

        def refuse(reason: str) -> _JobFailed:
            return _JobFailed(codes.EXTENSION_OPERATION_FAILED, {**extension, "reason": reason})

        result = report.result
        if result is None:
            raise refuse(f"no snapshot result in the extension status: {report.result_problem}")
        if result.task_id != task_id:
            raise refuse(f"the status is for task {result.task_id}, not {task_id}")
        by_path: dict[str, DiskSnapshot] = {_blob_path(s.blob_uri): s for s in result.snapshots}
        verified = []
        for disk in disks:
            snapshot = by_path.get(f"{DISK_CONTAINER}/{disk.name}")
            if snapshot is None:
                raise refuse(f"the extension reported no snapshot of {disk.name}")
            try:
                exists = self.storage.snapshot_exists(disk, snapshot.snapshot)
            except StorageError as exc:
                raise _JobFailed(codes.BACKUP_OPERATION_FAILED, {"reason": str(exc)}) from exc
            if not exists:
                raise refuse(f"snapshot {snapshot.snapshot} of {disk.name} is not in storage")
            verified.append((disk, snapshot.snapshot))
        consistency = _CONSISTENCY_BY_CODE.get(result.code, FILE_SYSTEM_CONSISTENT)
        return _Snapshots(tuple(verified), consistency)

    # ------------------------------------------------------------------ Transfer

    def _transfer(self, job: Job, snapshots: _Snapshots) -> Job:
        job = self._save(start_subtask(job, TRANSFER_TO_VAULT, self.clock.now()))
        expiry = self.clock.now() + timedelta(seconds=self.timings.sas_expiry)
        copied = []
        for disk, snapshot in snapshots.disks:
            vault_blob = vault_blob_name(job.vm, job.job_id, disk.name)
            try:
                self.storage.transfer_to_vault(disk, snapshot, vault_blob, expiry)
            except StorageError as exc:
                failure = _JobFailed(codes.BACKUP_OPERATION_FAILED, {"reason": str(exc)})
                return self._fail(job, TRANSFER_TO_VAULT, failure)
            copied.append(RestorePointDisk(disk.name, snapshot, vault_blob))
        now: datetime = self.clock.now()
        job = complete_subtask(job, TRANSFER_TO_VAULT, now)
        point = RestorePoint(
            self.new_id(), job.vm, job.job_id, now, tuple(copied), snapshots.consistency
        )
        self.store.finish_job(job, point)
        log.info("backup job %s on %s: completed, restore point %s", job.job_id, job.vm, point.id)
        return job
