"""A backup job as a pure state machine: sub-tasks move, the job's status follows.

Azure shows a VM backup job as two sub-tasks, "Take Snapshot" then "Transfer data to
vault", each ``NotStarted`` -> ``InProgress`` -> ``Completed`` or ``Failed``. The job's
own status is never stored: it is derived from its sub-tasks and its error, so the two
cannot disagree. Every transition is a function from one immutable :class:`Job` to the
next that refuses moves Azure would never make (a second sub-task before the first
completed, a failure of a sub-task that is not running), which is what lets the runner,
the store and the restart recovery share one set of rules. No clocks, threads or I/O
here: callers pass the time in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from lab.platform.backup.codes import BY_CODE, JobError

# How a job was started: "Backup now" in the portal, or a policy's schedule.
TRIGGER_ON_DEMAND = "OnDemand"
TRIGGER_SCHEDULED = "Scheduled"

TAKE_SNAPSHOT = "Take Snapshot"
TRANSFER_TO_VAULT = "Transfer data to vault"
SUBTASK_NAMES = (TAKE_SNAPSHOT, TRANSFER_TO_VAULT)


class SubtaskStatus(StrEnum):
    NOT_STARTED = "NotStarted"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"


class JobStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"


class TransitionError(ValueError):
    """A move the job state machine does not allow (a bug in the caller)."""


def iso_time(moment: datetime) -> str:
    """UTC, millisecond precision, ``Z`` suffix: how job times are shown."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


@dataclass(frozen=True)
class Subtask:
    name: str
    status: SubtaskStatus = SubtaskStatus.NOT_STARTED
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def seconds(self) -> float | None:
        return _seconds(self.started_at, self.ended_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": str(self.status),
            "seconds": self.seconds,
            "started_at": iso_time(self.started_at) if self.started_at else None,
            "ended_at": iso_time(self.ended_at) if self.ended_at else None,
        }


@dataclass(frozen=True)
class Job:
    """One backup job. ``task_id`` and ``seq_no`` are set once the snapshot settings
    are built; ``detail`` keeps what lies behind the Azure error (e.g. the extension's
    own code and message). ``trigger`` says whether a person or a policy's schedule
    started it (``policy`` names the policy)."""

    job_id: str
    vm: str
    started_at: datetime
    subtasks: tuple[Subtask, ...] = field(
        default_factory=lambda: tuple(Subtask(name) for name in SUBTASK_NAMES)
    )
    task_id: str | None = None
    seq_no: int | None = None
    error: JobError | None = None
    detail: Mapping[str, Any] | None = None
    ended_at: datetime | None = None
    trigger: str = TRIGGER_ON_DEMAND
    policy: str | None = None

    @property
    def status(self) -> JobStatus:
        if self.error is not None or any(s.status is SubtaskStatus.FAILED for s in self.subtasks):
            return JobStatus.FAILED
        if all(s.status is SubtaskStatus.COMPLETED for s in self.subtasks):
            return JobStatus.COMPLETED
        return JobStatus.IN_PROGRESS

    @property
    def seconds(self) -> float | None:
        return _seconds(self.started_at, self.ended_at)

    def subtask(self, name: str) -> Subtask:
        for subtask in self.subtasks:
            if subtask.name == name:
                return subtask
        raise TransitionError(f"job has no sub-task {name!r}")

    def running_subtask(self) -> Subtask | None:
        return next((s for s in self.subtasks if s.status is SubtaskStatus.IN_PROGRESS), None)

    def to_json(self) -> dict[str, Any]:
        """The job as the control API shows it."""
        return {
            "job_id": self.job_id,
            "vm": self.vm,
            "status": str(self.status),
            "error_code": self.error.code if self.error else None,
            "error_message": self.error.message if self.error else None,
            "detail": dict(self.detail) if self.detail is not None else None,
            "subtasks": [s.to_json() for s in self.subtasks],
            "seconds": self.seconds,
            "started_at": iso_time(self.started_at),
            "ended_at": iso_time(self.ended_at) if self.ended_at else None,
            "task_id": self.task_id,
            "trigger": self.trigger,
            "policy": self.policy,
        }

    # ------------------------------------------------------------------ records

    def to_record(self) -> dict[str, Any]:
        """Everything needed to rebuild the job exactly (the store's format)."""

        def stamp(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "job_id": self.job_id,
            "vm": self.vm,
            "started_at": stamp(self.started_at),
            "ended_at": stamp(self.ended_at),
            "task_id": self.task_id,
            "seq_no": self.seq_no,
            "error_code": self.error.code if self.error else None,
            "error_message": self.error.message if self.error else None,
            "detail": dict(self.detail) if self.detail is not None else None,
            "trigger": self.trigger,
            "policy": self.policy,
            "subtasks": [
                {
                    "name": s.name,
                    "status": str(s.status),
                    "started_at": stamp(s.started_at),
                    "ended_at": stamp(s.ended_at),
                }
                for s in self.subtasks
            ],
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Job:
        def moment(value: Any) -> datetime | None:
            return datetime.fromisoformat(value) if isinstance(value, str) else None

        code = record.get("error_code")
        error = None
        if isinstance(code, str):
            error = BY_CODE.get(code) or JobError(code, str(record.get("error_message") or ""))
        started = moment(record["started_at"])
        if started is None:
            raise ValueError(f"job record {record.get('job_id')!r} has no start time")
        return cls(
            job_id=str(record["job_id"]),
            vm=str(record["vm"]),
            started_at=started,
            ended_at=moment(record.get("ended_at")),
            task_id=record.get("task_id"),
            seq_no=record.get("seq_no"),
            error=error,
            detail=record.get("detail"),
            trigger=str(record.get("trigger") or TRIGGER_ON_DEMAND),
            policy=record.get("policy"),
            subtasks=tuple(
                Subtask(
                    name=str(s["name"]),
                    status=SubtaskStatus(s["status"]),
                    started_at=moment(s.get("started_at")),
                    ended_at=moment(s.get("ended_at")),
                )
                for s in record["subtasks"]
            ),
        )


# ---------------------------------------------------------------------- transitions


def new_job(
    job_id: str,
    vm: str,
    at: datetime,
    *,
    trigger: str = TRIGGER_ON_DEMAND,
    policy: str | None = None,
) -> Job:
    """A job that has just been accepted: InProgress, every sub-task NotStarted."""
    return Job(job_id=job_id, vm=vm, started_at=at, trigger=trigger, policy=policy)


def _require_in_progress(job: Job) -> None:
    if job.status is not JobStatus.IN_PROGRESS:
        raise TransitionError(f"job {job.job_id} is already {job.status}")


def _replace_subtask(job: Job, updated: Subtask) -> tuple[Subtask, ...]:
    return tuple(updated if s.name == updated.name else s for s in job.subtasks)


def _finished(job: Job, at: datetime) -> Job:
    """Stamp the end time once the derived status has become terminal."""
    if job.status is JobStatus.IN_PROGRESS:
        return job
    return replace(job, ended_at=at)


def reject(job: Job, error: JobError, at: datetime, detail: Mapping[str, Any] | None = None) -> Job:
    """A pre-check failed: the job ends Failed before any sub-task started."""
    _require_in_progress(job)
    if any(s.status is not SubtaskStatus.NOT_STARTED for s in job.subtasks):
        raise TransitionError(f"job {job.job_id} has started; fail its sub-task instead")
    return _finished(replace(job, error=error, detail=detail), at)


def with_task(job: Job, task_id: str, seq_no: int) -> Job:
    """Record the snapshot task id and the settings sequence number it was sent with."""
    _require_in_progress(job)
    return replace(job, task_id=task_id, seq_no=seq_no)


def start_subtask(job: Job, name: str, at: datetime) -> Job:
    """NotStarted -> InProgress, only after every earlier sub-task completed."""
    _require_in_progress(job)
    for subtask in job.subtasks:
        if subtask.name == name:
            break
        if subtask.status is not SubtaskStatus.COMPLETED:
            raise TransitionError(f"{name!r} cannot start before {subtask.name!r} completed")
    current = job.subtask(name)
    if current.status is not SubtaskStatus.NOT_STARTED:
        raise TransitionError(f"{name!r} is {current.status}, not NotStarted")
    started = replace(current, status=SubtaskStatus.IN_PROGRESS, started_at=at)
    return replace(job, subtasks=_replace_subtask(job, started))


def _end_subtask(job: Job, name: str, status: SubtaskStatus, at: datetime) -> Job:
    _require_in_progress(job)
    current = job.subtask(name)
    if current.status is not SubtaskStatus.IN_PROGRESS:
        raise TransitionError(f"{name!r} is {current.status}, not InProgress")
    ended = replace(current, status=status, ended_at=at)
    return replace(job, subtasks=_replace_subtask(job, ended))


def complete_subtask(job: Job, name: str, at: datetime) -> Job:
    """InProgress -> Completed; the job completes with its last sub-task."""
    return _finished(_end_subtask(job, name, SubtaskStatus.COMPLETED, at), at)


def fail_subtask(
    job: Job,
    name: str,
    error: JobError,
    at: datetime,
    detail: Mapping[str, Any] | None = None,
) -> Job:
    """InProgress -> Failed: the job fails with this error; later sub-tasks never start."""
    failed = _end_subtask(job, name, SubtaskStatus.FAILED, at)
    return _finished(replace(failed, error=error, detail=detail), at)


def abandon(
    job: Job, error: JobError, at: datetime, detail: Mapping[str, Any] | None = None
) -> Job:
    """End a job whose worker is gone (fabric restart, unexpected error), wherever it
    was: the running sub-task fails, or the job fails before starting one. A job that
    already ended is returned unchanged."""
    if job.status is not JobStatus.IN_PROGRESS:
        return job
    running = job.running_subtask()
    if running is None:  # between sub-tasks (or before the first): the job alone fails
        return _finished(replace(job, error=error, detail=detail), at)
    return fail_subtask(job, running.name, error, at, detail)
