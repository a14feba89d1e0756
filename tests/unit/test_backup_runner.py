"""One job run end to end over fakes: what the agent reports decides the outcome."""

from __future__ import annotations

import pytest

from lab.extension.protocol import (
    CODE_NO_NETWORK,
    CODE_SNAPSHOT_LIMIT,
    TIME_SCALE_KEY,
    DiskSnapshot,
    SnapshotResult,
    from_ticks,
)
from lab.platform.backup import codes
from lab.platform.backup.agent import HandlerReport
from lab.platform.backup.job import TAKE_SNAPSHOT, Job, JobStatus, new_job
from lab.platform.backup.restore_point import (
    APPLICATION_CONSISTENT,
    CRASH_CONSISTENT,
    FILE_SYSTEM_CONSISTENT,
)
from lab.platform.backup.runner import BackupTimings, JobRunner
from lab.platform.backup.slots import HostSnapshotSlots
from lab.platform.backup.store import BackupStore
from tests.unit.backup_fakes import (
    FakeAgent,
    FakeStorage,
    Push,
    advancing_sleep,
    fails_with,
    snapshots_every_disk,
    stays_transitioning,
)
from tests.unit.fabric_samples import FakeClock

TIMINGS = BackupTimings(time_scale=240.0, subtask_timeout=23.75, sas_expiry=60.0, poll_seconds=0.25)


class Rig:
    def __init__(self, timings: BackupTimings = TIMINGS) -> None:
        self.clock = FakeClock()
        self.slots = HostSnapshotSlots()
        self.storage = FakeStorage()
        self.agent = FakeAgent(self.storage, self.clock)
        self.store = BackupStore(":memory:")
        self.sleeps: list[float] = []
        advance = advancing_sleep(self.clock)

        def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            advance(seconds)

        ids = iter(f"id-{n}" for n in range(1000))
        self.runner = JobRunner(
            store=self.store,
            storage=self.storage,
            agent=self.agent,
            clock=self.clock,
            sleep=sleep,
            timings=timings,
            new_id=lambda: next(ids),
            slots=self.slots,
        )

    def run(self, vm: str = "vm1", job_id: str = "job-1") -> Job:
        job = new_job(job_id, vm, self.clock.now())
        self.store.save_job(job)
        finished = self.runner.run(job)
        assert self.store.job(job_id) == finished  # what the API shows is what happened
        return finished


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_success_snapshots_transfers_and_records_a_restore_point(rig: Rig) -> None:
    rig.agent.behaviour = snapshots_every_disk
    job = rig.run()
    assert job.status is JobStatus.COMPLETED, job.to_json()
    assert job.error is None
    (push,) = rig.agent.pushes
    assert job.task_id == push.public.task_id and job.seq_no == push.seq_no == 0
    snapshot = rig.storage.snapshots["vm1-osdisk.vhd"][0]
    assert rig.storage.vault == {"vm1/job-1/vm1-osdisk.vhd": ("vm1-osdisk.vhd", snapshot)}
    (point,) = rig.store.restore_points("vm1")
    assert point.to_json()["disks"] == [
        {"name": "vm1-osdisk.vhd", "snapshot": snapshot, "vault_blob": "vm1/job-1/vm1-osdisk.vhd"}
    ]
    assert point.job_id == "job-1" and point.vm == "vm1"
    assert rig.sleeps == []  # the report was already there: no waiting


def test_settings_carry_task_time_scale_and_sas_urls(rig: Rig) -> None:
    rig.agent.behaviour = snapshots_every_disk
    rig.run()
    (push,) = rig.agent.pushes
    assert push.public.command == "snapshot"
    assert push.public.time_scale == 240.0
    assert push.public.command_start == rig.clock.now()
    assert push.public.to_json()[TIME_SCALE_KEY] == 240.0
    assert from_ticks(int(push.public.to_json()["commandStartTimeUTCTicks"])) == rig.clock.now()
    (disk_uri,) = push.protected.disk_sas_uris
    assert disk_uri.startswith(f"{rig.storage.account_url}/vhds/vm1-osdisk.vhd?")
    assert "sp=rcw" in disk_uri
    assert "/vmstatus/vm1/id-0.status?" in push.protected.status_blob_uri


def test_sequence_numbers_continue_from_goal_state_and_store(rig: Rig) -> None:
    rig.agent.behaviour = snapshots_every_disk
    rig.agent.goal_state_seq["vm1"] = 6
    assert rig.run(job_id="a").seq_no == 7
    rig.agent.goal_state_seq.clear()  # e.g. the fabric restarted: the store remembers
    assert rig.run(job_id="b").seq_no == 8
    assert rig.run(vm="vm2", job_id="c").seq_no == 0


def test_no_network_error_maps_to_its_portal_code(rig: Rig) -> None:
    rig.agent.behaviour = fails_with(CODE_NO_NETWORK, "snapshot PUT failed: no route to host")
    job = rig.run()
    assert job.status is JobStatus.FAILED
    assert job.error == codes.EXTENSION_SNAPSHOT_FAILED_NO_NETWORK
    assert job.detail == {
        "extension_code": 76,
        "extension_message": "snapshot PUT failed: no route to host",
    }
    assert [str(s.status) for s in job.subtasks] == ["Failed", "NotStarted"]
    assert rig.store.restore_points("vm1") == []


def test_other_extension_error_is_generic_and_keeps_the_extension_detail(rig: Rig) -> None:
    rig.agent.behaviour = fails_with(CODE_SNAPSHOT_LIMIT, "snapshot limit reached")
    job = rig.run()
    assert job.error == codes.EXTENSION_OPERATION_FAILED
    assert job.to_json()["detail"] == {
        "extension_code": 85,
        "extension_message": "snapshot limit reached",
    }


def test_no_terminal_status_times_out_on_the_injected_clock(rig: Rig) -> None:
    rig.agent.behaviour = stays_transitioning
    start = rig.clock.monotonic()
    job = rig.run()
    assert job.error == codes.GUEST_AGENT_SNAPSHOT_TASK_STATUS_ERROR
    assert rig.clock.monotonic() - start == pytest.approx(TIMINGS.subtask_timeout)
    assert job.subtask(TAKE_SNAPSHOT).seconds == pytest.approx(TIMINGS.subtask_timeout)
    assert max(rig.sleeps) <= TIMINGS.poll_seconds
    assert job.detail is not None and job.detail["last_extension_status"] == "transitioning"


def test_a_report_for_an_older_sequence_number_is_not_an_answer(rig: Rig) -> None:
    def answers_for_the_previous_task(agent: FakeAgent, push: Push) -> None:
        stale = Push(push.vm, push.seq_no - 1, push.public, push.protected)
        agent.report(stale, SnapshotResult(push.public.task_id, "success", 1, "old"))

    rig.agent.goal_state_seq["vm1"] = 3
    rig.agent.behaviour = answers_for_the_previous_task
    job = rig.run()
    assert job.error == codes.GUEST_AGENT_SNAPSHOT_TASK_STATUS_ERROR
    assert job.detail is not None and job.detail["last_extension_status"] is None


def test_late_success_within_the_timeout_completes(rig: Rig) -> None:
    pending: list[Push] = []
    rig.agent.behaviour = lambda agent, push: pending.append(push)
    original_sleep = rig.runner.sleep

    def sleep(seconds: float) -> None:
        original_sleep(seconds)
        if pending and rig.clock.monotonic() > 1000 + 10:  # the extension needs 10 s
            snapshots_every_disk(rig.agent, pending.pop())

    rig.runner.sleep = sleep
    job = rig.run()
    assert job.status is JobStatus.COMPLETED
    assert 10 < job.subtask(TAKE_SNAPSHOT).seconds < 11  # type: ignore[operator]


def test_success_for_another_task_is_an_extension_failure(rig: Rig) -> None:
    rig.agent.behaviour = lambda agent, push: agent.report(
        push, SnapshotResult("some-other-task", "success", 1, "done")
    )
    job = rig.run()
    assert job.error == codes.EXTENSION_OPERATION_FAILED
    assert job.detail is not None and "some-other-task" in job.detail["reason"]


def test_success_without_a_result_is_an_extension_failure(rig: Rig) -> None:
    def no_substatus(agent: FakeAgent, push: Push) -> None:
        agent.reports[push.vm] = HandlerReport(
            "success", 1, "done", push.seq_no, None, "status has no VMSnapshotResult substatus"
        )

    rig.agent.behaviour = no_substatus
    job = rig.run()
    assert job.error == codes.EXTENSION_OPERATION_FAILED
    assert job.detail == {
        "extension_code": 1,
        "extension_message": "done",
        "reason": "no snapshot result in the extension status: "
        "status has no VMSnapshotResult substatus",
    }


def test_success_naming_a_snapshot_storage_does_not_have_fails(rig: Rig) -> None:
    def lies(agent: FakeAgent, push: Push) -> None:
        uri = push.protected.disk_sas_uris[0].split("?")[0]
        fake = DiskSnapshot(uri, "2000-01-01T00:00:00.0000000Z")
        agent.report(push, SnapshotResult(push.public.task_id, "success", 1, "ok", (fake,)))

    rig.agent.behaviour = lies
    job = rig.run()
    assert job.error == codes.EXTENSION_OPERATION_FAILED
    assert job.detail is not None and "not in storage" in job.detail["reason"]
    assert rig.storage.vault == {}


def test_success_missing_a_disk_fails(rig: Rig) -> None:
    rig.agent.behaviour = lambda agent, push: agent.report(
        push, SnapshotResult(push.public.task_id, "success", 1, "ok", ())
    )
    job = rig.run()
    assert job.error == codes.EXTENSION_OPERATION_FAILED
    assert job.detail is not None and "no snapshot of vm1-osdisk.vhd" in job.detail["reason"]


def test_transfer_failure_is_an_internal_error(rig: Rig) -> None:
    rig.agent.behaviour = snapshots_every_disk
    rig.storage.transfer_error = "vault unreachable"
    job = rig.run()
    assert job.error == codes.BACKUP_OPERATION_FAILED
    assert [str(s.status) for s in job.subtasks] == ["Completed", "Failed"]
    assert job.detail == {"reason": "vault unreachable"}
    assert rig.store.restore_points("vm1") == []


def test_storage_not_ready_fails_before_touching_the_guest(rig: Rig) -> None:
    rig.storage._ready = False
    job = rig.run()
    assert job.error == codes.BACKUP_OPERATION_FAILED
    assert rig.agent.pushes == []


def test_an_unexpected_error_never_leaves_the_job_in_progress(rig: Rig) -> None:
    def explodes(agent: FakeAgent, push: Push) -> None:
        raise RuntimeError("bug")

    rig.agent.behaviour = explodes
    job = rig.run()
    assert job.status is JobStatus.FAILED
    assert job.error == codes.BACKUP_OPERATION_FAILED
    assert [str(s.status) for s in job.subtasks] == ["Failed", "NotStarted"]
    assert job.task_id is not None  # it got as far as building the task


# --------------------------------------------------------------------------- host slots


def test_a_job_waits_for_a_host_slot_and_its_timeout_keeps_running(rig: Rig) -> None:
    """Four other snapshots hold the host: the job never gets to the VM and fails on
    the sub-task timeout, as a VM queued behind a schedule storm does."""
    rig.agent.behaviour = snapshots_every_disk
    for other in ("a", "b", "c", "d"):
        rig.slots.enqueue(other)
    start = rig.clock.monotonic()
    job = rig.run()
    assert job.error == codes.GUEST_AGENT_SNAPSHOT_TASK_STATUS_ERROR
    assert rig.clock.monotonic() - start == pytest.approx(TIMINGS.subtask_timeout)
    assert rig.agent.pushes == []  # the settings were never sent
    # The job document says what Azure's says (the sub-task timed out), never why the
    # host was busy: that is the lab's model, kept to the platform's own log.
    assert job.detail is not None and "sub-task did not finish" in job.detail["reason"]
    assert not any("slot" in str(value) for value in job.detail.values())
    assert rig.slots.position("job-1") is None  # it left the queue


def test_a_slot_that_frees_in_time_lets_the_job_through(rig: Rig) -> None:
    rig.agent.behaviour = snapshots_every_disk
    for other in ("a", "b", "c", "d"):
        rig.slots.enqueue(other)
    original_sleep = rig.runner.sleep

    def sleep(seconds: float) -> None:
        original_sleep(seconds)
        if rig.clock.monotonic() > 1000 + 5:  # "a" is done with the host after 5 s
            rig.slots.release("a")

    rig.runner.sleep = sleep
    job = rig.run()
    assert job.status is JobStatus.COMPLETED, job.to_json()
    assert 5 < job.subtask(TAKE_SNAPSHOT).seconds < 6  # type: ignore[operator]
    assert rig.slots.busy() == ["b", "c", "d"]  # the job gave its slot back


def test_the_host_work_holds_the_slot_and_counts_against_the_timeout() -> None:
    rig = Rig(BackupTimings(240.0, subtask_timeout=23.75, sas_expiry=60.0, host_snapshot_work=6.25))
    rig.agent.behaviour = snapshots_every_disk
    held: list[list[str]] = []
    original_sleep = rig.runner.sleep

    def sleep(seconds: float) -> None:
        held.append(rig.slots.busy())
        original_sleep(seconds)

    rig.runner.sleep = sleep
    job = rig.run()
    assert job.status is JobStatus.COMPLETED
    assert job.subtask(TAKE_SNAPSHOT).seconds == pytest.approx(6.25)
    assert held and all(busy == ["job-1"] for busy in held)
    assert rig.slots.busy() == []


def test_host_work_past_the_deadline_is_the_sub_task_timeout() -> None:
    rig = Rig(BackupTimings(240.0, subtask_timeout=5.0, sas_expiry=60.0, host_snapshot_work=6.25))
    rig.agent.behaviour = snapshots_every_disk
    job = rig.run()
    assert job.error == codes.GUEST_AGENT_SNAPSHOT_TASK_STATUS_ERROR
    assert job.detail is not None and "host's work" in job.detail["reason"]
    assert rig.store.restore_points("vm1") == []


# --------------------------------------------------------------------------- stopped VMs


@pytest.mark.parametrize("state", ["stopped", "deallocated"])
def test_a_stopped_vm_is_snapshotted_by_the_host_without_its_agent(rig: Rig, state: str) -> None:
    rig.agent.power["vm1"] = state
    rig.agent.behaviour = stays_transitioning  # nobody would answer
    job = rig.run()
    assert job.status is JobStatus.COMPLETED, job.to_json()
    assert rig.agent.pushes == []  # no settings for an agent that is not running
    (snapshot,) = rig.storage.snapshots["vm1-osdisk.vhd"]
    (point,) = rig.store.restore_points("vm1")
    assert point.consistency == CRASH_CONSISTENT
    assert point.disks[0].snapshot == snapshot
    assert job.task_id is None and job.seq_no is None


@pytest.mark.parametrize(
    ("code", "consistency"),
    [(0, APPLICATION_CONSISTENT), (1, FILE_SYSTEM_CONSISTENT)],
)
def test_restore_point_consistency_follows_the_extension_code(
    rig: Rig, code: int, consistency: str
) -> None:
    def succeeds_with(agent: FakeAgent, push: Push) -> None:
        uri = push.protected.disk_sas_uris[0].split("?")[0]
        taken = DiskSnapshot(uri, agent.storage.take_snapshot("vm1-osdisk.vhd"))
        agent.report(push, SnapshotResult(push.public.task_id, "success", code, "ok", (taken,)))

    rig.agent.behaviour = succeeds_with
    rig.run()
    assert rig.store.restore_points("vm1")[0].consistency == consistency


def test_current_timings_scale_the_host_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPLAB_TIME_SCALE", "240")
    timings = BackupTimings.current()
    assert timings.host_snapshot_work == pytest.approx(25 * 60 / 240)
    assert timings.subtask_timeout == pytest.approx(95 * 60 / 240)
