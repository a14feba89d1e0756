"""The job state machine: sub-task moves, derived job status, refused moves, records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lab.platform.backup import codes
from lab.platform.backup.job import (
    TAKE_SNAPSHOT,
    TRANSFER_TO_VAULT,
    TRIGGER_SCHEDULED,
    Job,
    JobStatus,
    SubtaskStatus,
    TransitionError,
    abandon,
    complete_subtask,
    fail_subtask,
    new_job,
    reject,
    start_subtask,
    with_task,
)

T0 = datetime(2026, 11, 27, 21, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def statuses(job: Job) -> list[str]:
    return [str(s.status) for s in job.subtasks]


def test_new_job_is_in_progress_with_both_subtasks_not_started() -> None:
    job = new_job("j1", "vm1", T0)
    assert job.status is JobStatus.IN_PROGRESS
    assert [s.name for s in job.subtasks] == ["Take Snapshot", "Transfer data to vault"]
    assert statuses(job) == ["NotStarted", "NotStarted"]
    assert job.seconds is None and job.ended_at is None


def test_happy_path_completes_and_times_every_step() -> None:
    job = start_subtask(new_job("j1", "vm1", T0), TAKE_SNAPSHOT, at(1))
    assert statuses(job) == ["InProgress", "NotStarted"]
    job = complete_subtask(job, TAKE_SNAPSHOT, at(5))
    assert job.status is JobStatus.IN_PROGRESS and job.ended_at is None
    job = start_subtask(job, TRANSFER_TO_VAULT, at(5))
    job = complete_subtask(job, TRANSFER_TO_VAULT, at(7.5))
    assert job.status is JobStatus.COMPLETED
    assert statuses(job) == ["Completed", "Completed"]
    assert job.ended_at == at(7.5)
    assert job.seconds == 7.5
    assert [s.seconds for s in job.subtasks] == [4.0, 2.5]
    assert job.error is None


def test_failing_a_subtask_fails_the_job_and_leaves_later_ones_not_started() -> None:
    job = start_subtask(new_job("j1", "vm1", T0), TAKE_SNAPSHOT, at(1))
    detail = {"extension_code": 76, "extension_message": "no network"}
    job = fail_subtask(
        job, TAKE_SNAPSHOT, codes.EXTENSION_SNAPSHOT_FAILED_NO_NETWORK, at(3), detail
    )
    assert job.status is JobStatus.FAILED
    assert statuses(job) == ["Failed", "NotStarted"]
    assert job.error == codes.EXTENSION_SNAPSHOT_FAILED_NO_NETWORK
    assert job.detail == detail
    assert job.ended_at == at(3)


def test_reject_fails_before_any_subtask() -> None:
    job = reject(new_job("j1", "vm1", T0), codes.RP_COLLECTION_LIMIT_REACHED, T0)
    assert job.status is JobStatus.FAILED
    assert statuses(job) == ["NotStarted", "NotStarted"]
    assert job.seconds == 0.0


@pytest.mark.parametrize(
    "move",
    [
        # the second sub-task cannot start before the first completed
        lambda j: start_subtask(j, TRANSFER_TO_VAULT, at(1)),
        # nothing to complete or fail yet
        lambda j: complete_subtask(j, TAKE_SNAPSHOT, at(1)),
        lambda j: fail_subtask(j, TAKE_SNAPSHOT, codes.BACKUP_OPERATION_FAILED, at(1)),
        # no such sub-task
        lambda j: start_subtask(j, "Prepare backup", at(1)),
    ],
)
def test_refused_moves_on_a_new_job(move: object) -> None:
    with pytest.raises(TransitionError):
        move(new_job("j1", "vm1", T0))  # type: ignore[operator]


def test_refused_moves_once_running_or_ended() -> None:
    running = start_subtask(new_job("j1", "vm1", T0), TAKE_SNAPSHOT, at(1))
    with pytest.raises(TransitionError):
        start_subtask(running, TAKE_SNAPSHOT, at(2))  # already running
    with pytest.raises(TransitionError):
        reject(running, codes.BACKUP_OPERATION_FAILED, at(2))  # too late to reject
    failed = fail_subtask(running, TAKE_SNAPSHOT, codes.BACKUP_OPERATION_FAILED, at(2))
    for move in (
        lambda: start_subtask(failed, TRANSFER_TO_VAULT, at(3)),
        lambda: with_task(failed, "t", 1),
        lambda: reject(failed, codes.BACKUP_OPERATION_FAILED, at(3)),
    ):
        with pytest.raises(TransitionError):
            move()


def test_abandon_fails_wherever_the_job_was() -> None:
    error = codes.BACKUP_OPERATION_FAILED
    fresh = abandon(new_job("j1", "vm1", T0), error, at(9))
    assert fresh.status is JobStatus.FAILED and statuses(fresh) == ["NotStarted", "NotStarted"]

    running = start_subtask(new_job("j2", "vm1", T0), TAKE_SNAPSHOT, at(1))
    assert statuses(abandon(running, error, at(9))) == ["Failed", "NotStarted"]

    between = complete_subtask(running, TAKE_SNAPSHOT, at(2))
    ended = abandon(between, error, at(9))
    assert ended.status is JobStatus.FAILED and ended.error == error
    assert statuses(ended) == ["Completed", "NotStarted"]
    assert ended.ended_at == at(9)

    assert abandon(ended, codes.RP_COLLECTION_LIMIT_REACHED, at(10)) is ended


def test_status_is_derived_never_stored() -> None:
    job = start_subtask(new_job("j1", "vm1", T0), TAKE_SNAPSHOT, at(1))
    assert job.subtask(TAKE_SNAPSHOT).status is SubtaskStatus.IN_PROGRESS
    assert "status" not in job.to_record()


def test_json_shape_for_the_control_api() -> None:
    job = with_task(start_subtask(new_job("j1", "vm1", T0), TAKE_SNAPSHOT, at(1)), "task-1", 4)
    job = fail_subtask(
        job, TAKE_SNAPSHOT, codes.GUEST_AGENT_SNAPSHOT_TASK_STATUS_ERROR, at(25.25), {"r": 1}
    )
    assert job.to_json() == {
        "job_id": "j1",
        "vm": "vm1",
        "status": "Failed",
        "error_code": "GuestAgentSnapshotTaskStatusError",
        "error_message": (
            "Could not communicate with the VM agent for snapshot status - "
            "Snapshot VM sub-task timed out"
        ),
        "detail": {"r": 1},
        "subtasks": [
            {
                "name": "Take Snapshot",
                "status": "Failed",
                "seconds": 24.25,
                "started_at": "2026-11-27T21:00:01.000Z",
                "ended_at": "2026-11-27T21:00:25.250Z",
            },
            {
                "name": "Transfer data to vault",
                "status": "NotStarted",
                "seconds": None,
                "started_at": None,
                "ended_at": None,
            },
        ],
        "seconds": 25.25,
        "started_at": "2026-11-27T21:00:00.000Z",
        "ended_at": "2026-11-27T21:00:25.250Z",
        "task_id": "task-1",
        "trigger": "OnDemand",
        "policy": None,
    }


def test_records_round_trip_exactly() -> None:
    job = with_task(start_subtask(new_job("j1", "vm1", T0), TAKE_SNAPSHOT, at(1)), "t", 3)
    for state in (
        new_job("j0", "vm2", T0),
        new_job("j2", "vm2", T0, trigger=TRIGGER_SCHEDULED, policy="DailyPolicy"),
        job,
        complete_subtask(job, TAKE_SNAPSHOT, at(2.000001)),
        fail_subtask(job, TAKE_SNAPSHOT, codes.BACKUP_OPERATION_FAILED, at(4), {"reason": "x"}),
    ):
        assert Job.from_record(state.to_record()) == state
