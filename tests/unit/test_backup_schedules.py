"""Backup policies in the service: VMs on policies, schedules that start them all at
once, and the host's four snapshot slots deciding who times out."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from lab.platform.backup import codes
from lab.platform.backup.job import TRIGGER_SCHEDULED, JobStatus
from lab.platform.backup.policy import PolicyError
from lab.platform.backup.runner import BackupTimings
from lab.platform.backup.service import BackupService
from lab.platform.backup.store import BackupStore
from lab.platform.clock import SystemClock
from tests.unit.backup_fakes import FakeAgent, FakeStorage, advancing_sleep, snapshots_every_disk
from tests.unit.fabric_samples import FakeClock

VMS = [f"vm{n}" for n in range(1, 7)]
TIMINGS = BackupTimings(time_scale=240.0, subtask_timeout=23.75, sas_expiry=60.0)


class HeldSpawn:
    def __init__(self) -> None:
        self.pending: list[tuple[str, Callable[[], object]]] = []

    def __call__(self, name: str, target: Callable[[], object]) -> None:
        self.pending.append((name, target))


class Rig:
    def __init__(self, db: Path | str = ":memory:") -> None:
        self.clock = FakeClock()
        self.storage = FakeStorage()
        self.agent = FakeAgent(self.storage, self.clock, behaviour=snapshots_every_disk)
        self.spawn = HeldSpawn()
        self.store = BackupStore(db)
        self.service = BackupService(
            vms=VMS,
            store=self.store,
            storage=self.storage,
            agent=self.agent,
            clock=self.clock,
            timings=lambda: TIMINGS,
            spawn=self.spawn,
            sleep=advancing_sleep(self.clock),
            run_schedules=False,
        )

    def storm(self, policy: str = "DailyPolicy", run_time: str = "22:00") -> None:
        self.service.set_policy(policy, run_time)
        for vm in VMS:
            self.service.protect(vm, policy)


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_a_policy_lists_its_vms_and_next_run_on_the_azure_clock(rig: Rig) -> None:
    rig.storm()  # the Azure clock starts at the lab's 21:56:23
    view = rig.service.policies()
    assert view["azure_now"] == "2026-11-27T21:56:23Z"
    assert view["time_scale"] == 240.0 and view["host_snapshot_slots"] == 4
    (policy,) = view["policies"]
    assert policy["name"] == "DailyPolicy" and policy["schedule_run_time"] == "22:00"
    assert policy["vms"] == VMS
    assert policy["next_run"] == "2026-11-27T22:00:00Z"
    assert policy["next_run_in_lab_seconds"] == pytest.approx(217 / 240, abs=0.01)


def test_moving_a_vm_takes_it_off_its_old_policy_and_puts_it_last(rig: Rig) -> None:
    rig.storm()
    rig.service.set_policy("Other", "23:00")
    assert rig.service.protect("vm2", "Other") == {"vm": "vm2", "policy": "Other"}
    rig.service.protect("vm1", "DailyPolicy")  # re-joining moves it to the end
    names = {p["name"]: p["vms"] for p in rig.service.policies()["policies"]}
    assert names == {"DailyPolicy": ["vm3", "vm4", "vm5", "vm6", "vm1"], "Other": ["vm2"]}
    assert rig.service.unprotect("vm2") == {"vm": "vm2", "policy": None}
    assert rig.service.protection("vm2") == {"vm": "vm2", "policy": None}


def test_bad_policies_and_unknown_names_are_refused(rig: Rig) -> None:
    with pytest.raises(PolicyError):
        rig.service.set_policy("DailyPolicy", "25:00")
    with pytest.raises(LookupError, match="no backup policy"):
        rig.service.protect("vm1", "Nope")
    with pytest.raises(KeyError):
        rig.service.protect("vm9", "Nope")


def test_at_its_run_time_the_schedule_starts_every_vm_of_the_policy(rig: Rig) -> None:
    rig.storm()
    assert rig.service.scheduler.tick() == []  # the first look only starts the clock
    rig.clock.advance(0.5)  # 2 Azure minutes: 21:58
    assert rig.service.scheduler.tick() == []
    rig.clock.advance(1.0)  # 22:02: the run time has come
    started = rig.service.scheduler.tick()
    assert started == [("DailyPolicy", vm) for vm in VMS]
    jobs = {j.vm: j for j in rig.service.jobs()}
    assert all(j.trigger == TRIGGER_SCHEDULED and j.policy == "DailyPolicy" for j in jobs.values())
    assert all(j.status is JobStatus.IN_PROGRESS for j in jobs.values())
    # The host's queue is the order the policy started them in: four hold a slot.
    assert rig.service.slots.busy() == [jobs[vm].job_id for vm in VMS[:4]]
    assert rig.service.slots.waiting() == [jobs[vm].job_id for vm in VMS[4:]]
    rig.clock.advance(1.0)
    assert rig.service.scheduler.tick() == []  # once per Azure day
    rig.clock.advance(360)  # a lab day later (6 minutes at 240)
    assert [vm for _, vm in rig.service.scheduler.tick()] == VMS


def test_a_vm_still_backing_up_gets_a_refused_scheduled_job(rig: Rig) -> None:
    rig.storm()
    rig.service.scheduler.tick()
    rig.service.start_backup("vm3")  # Backup now, just before the schedule
    rig.clock.advance(1.5)
    rig.service.scheduler.tick()
    scheduled = [j for j in rig.service.jobs("vm3") if j.trigger == TRIGGER_SCHEDULED]
    assert [j.error for j in scheduled] == [codes.BACKUP_OPERATION_IN_PROGRESS]


def test_one_vm_failing_to_start_does_not_stop_the_others(rig: Rig) -> None:
    rig.storm()
    real_start = rig.service.scheduler.start

    def flaky(vm: str, policy: str) -> object:
        if vm == "vm2":
            raise RuntimeError("bug")
        return real_start(vm, policy)

    rig.service.scheduler.start = flaky
    rig.service.scheduler.tick()
    rig.clock.advance(1.5)
    assert [vm for _, vm in rig.service.scheduler.tick()] == [v for v in VMS if v != "vm2"]


def test_policies_and_protection_outlive_the_fabric(tmp_path: Path) -> None:
    db = tmp_path / "backup.sqlite"
    before = Rig(db)
    before.storm()
    before.store.close()
    after = Rig(db)
    (policy,) = after.service.policies()["policies"]
    assert policy["vms"] == VMS and policy["schedule_run_time"] == "22:00"
    assert after.service.protection("vm4") == {"vm": "vm4", "policy": "DailyPolicy"}


def test_a_stopped_vm_is_backed_up_without_a_ready_agent(rig: Rig) -> None:
    rig.agent.ready = False
    rig.agent.power["vm1"] = "stopped"
    job = rig.service.start_backup("vm1")
    assert job.status is JobStatus.IN_PROGRESS  # the agent does not matter
    assert rig.service.start_backup("vm2").error == codes.GUEST_AGENT_STATUS_UNAVAILABLE


def test_the_service_runs_its_schedules_in_a_thread_once_a_policy_exists() -> None:
    clock = FakeClock()
    storage = FakeStorage()
    service = BackupService(
        vms=VMS,
        store=BackupStore(":memory:"),
        storage=storage,
        agent=FakeAgent(storage, clock),
        clock=clock,
        timings=lambda: TIMINGS,
        spawn=HeldSpawn(),
    )
    service.set_policy("DailyPolicy", "22:00")
    names = [t.name for t in threading.enumerate()]
    try:
        assert "backup-scheduler" in names
    finally:
        service.stop_scheduler()


def test_a_storm_of_six_on_a_host_of_four_times_out_the_last_two() -> None:
    """Real threads, real (short) time: each VM holds a slot for the host's work, 0.6 s;
    the sub-task timeout is 1 s. The first four finish in 0.6 s; the last two wait for a
    slot 0.6 s and need 0.6 s more: they time out."""
    clock = SystemClock()
    storage = FakeStorage()
    agent = FakeAgent(storage, FakeClock(), behaviour=snapshots_every_disk)
    timings = BackupTimings(
        240.0, subtask_timeout=1.0, sas_expiry=60.0, poll_seconds=0.01, host_snapshot_work=0.6
    )
    service = BackupService(
        vms=VMS,
        store=BackupStore(":memory:"),
        storage=storage,
        agent=agent,
        clock=clock,
        timings=lambda: timings,
        run_schedules=False,
    )
    started = [service.start_backup(vm).job_id for vm in VMS]
    deadline = time.monotonic() + 10
    while any(service.job(j).status is JobStatus.IN_PROGRESS for j in started):  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    outcome = {service.job(j).vm: service.job(j) for j in started}  # type: ignore[union-attr]
    assert [outcome[vm].status for vm in VMS[:4]] == [JobStatus.COMPLETED] * 4
    for vm in VMS[4:]:
        assert outcome[vm].error == codes.GUEST_AGENT_SNAPSHOT_TASK_STATUS_ERROR
    assert service.slots.busy() == []
    assert timedelta(seconds=timings.subtask_timeout) < timedelta(seconds=2 * 0.6)
