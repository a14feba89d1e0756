"""The service: pre-checks in Azure's order, one job at a time per VM, the 18 restore
point limit, and restart recovery of jobs whose worker died."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from lab.platform.backup import codes
from lab.platform.backup.job import (
    TAKE_SNAPSHOT,
    TRANSFER_TO_VAULT,
    JobStatus,
    complete_subtask,
    new_job,
    start_subtask,
)
from lab.platform.backup.restore_point import RestorePoint, RestorePointDisk
from lab.platform.backup.runner import BackupTimings
from lab.platform.backup.service import BackupService
from lab.platform.backup.store import BackupStore
from tests.unit.backup_fakes import FakeAgent, FakeStorage, advancing_sleep, snapshots_every_disk
from tests.unit.fabric_samples import FakeClock

TIMINGS = BackupTimings(time_scale=240.0, subtask_timeout=20.0, sas_expiry=60.0)


class DeferredSpawn:
    """Holds job workers until the test runs them, to see a job while it runs."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, Callable[[], object]]] = []

    def __call__(self, name: str, target: Callable[[], object]) -> None:
        self.pending.append((name, target))

    def run_all(self) -> None:
        while self.pending:
            self.pending.pop(0)[1]()


class Rig:
    def __init__(self, db: Path | str = ":memory:") -> None:
        self.clock = FakeClock()
        self.storage = FakeStorage()
        self.agent = FakeAgent(self.storage, self.clock, behaviour=snapshots_every_disk)
        self.spawn = DeferredSpawn()
        self.store = BackupStore(db)
        self.service = BackupService(
            vms=["vm1", "vm2"],
            store=self.store,
            storage=self.storage,
            agent=self.agent,
            clock=self.clock,
            timings=lambda: TIMINGS,
            spawn=self.spawn,
            sleep=advancing_sleep(self.clock),
        )


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_a_backup_is_accepted_then_runs_in_its_worker(rig: Rig) -> None:
    job = rig.service.start_backup("vm1")
    assert job.status is JobStatus.IN_PROGRESS
    assert [name for name, _ in rig.spawn.pending] == [f"backup-{job.job_id}"]
    assert rig.service.job(job.job_id) == job
    rig.spawn.run_all()
    done = rig.service.job(job.job_id)
    assert done is not None and done.status is JobStatus.COMPLETED
    assert len(rig.service.restore_points("vm1")) == 1


def test_second_job_while_one_runs_is_refused(rig: Rig) -> None:
    first = rig.service.start_backup("vm1")
    second = rig.service.start_backup("vm1")
    assert second.status is JobStatus.FAILED
    assert second.error == codes.BACKUP_OPERATION_IN_PROGRESS
    assert [str(s.status) for s in second.subtasks] == ["NotStarted", "NotStarted"]
    assert len(rig.spawn.pending) == 1  # the refused job never got a worker
    other_vm = rig.service.start_backup("vm2")  # another VM is not blocked
    assert other_vm.status is JobStatus.IN_PROGRESS
    assert [j.job_id for j in rig.service.jobs("vm1")] == [second.job_id, first.job_id]
    rig.spawn.run_all()
    third = rig.service.start_backup("vm1")  # once it ended, backups run again
    assert third.status is JobStatus.IN_PROGRESS


def _fill_restore_points(store: BackupStore, vm: str, count: int, clock: FakeClock) -> None:
    for n in range(count):
        job = new_job(f"old-{n}", vm, clock.now())
        for name in (TAKE_SNAPSHOT, TRANSFER_TO_VAULT):
            job = complete_subtask(start_subtask(job, name, clock.now()), name, clock.now())
        disk = RestorePointDisk(f"{vm}-osdisk.vhd", f"snap-{n}", f"{vm}/old-{n}/d")
        store.finish_job(job, RestorePoint(f"rp-{n}", vm, job.job_id, clock.now(), (disk,)))


def test_the_nineteenth_restore_point_is_refused(rig: Rig) -> None:
    _fill_restore_points(rig.store, "vm1", 17, rig.clock)
    job = rig.service.start_backup("vm1")
    rig.spawn.run_all()
    assert rig.service.job(job.job_id).status is JobStatus.COMPLETED  # type: ignore[union-attr]
    assert len(rig.service.restore_points("vm1")) == 18
    refused = rig.service.start_backup("vm1")
    assert refused.error == codes.RP_COLLECTION_LIMIT_REACHED
    assert rig.spawn.pending == []


def test_agent_not_ready_is_refused_last(rig: Rig) -> None:
    rig.agent.ready = False
    refused = rig.service.start_backup("vm1")
    assert refused.error == codes.GUEST_AGENT_STATUS_UNAVAILABLE
    assert rig.agent.pushes == []
    _fill_restore_points(rig.store, "vm1", 18, rig.clock)
    assert rig.service.start_backup("vm1").error == codes.RP_COLLECTION_LIMIT_REACHED


def test_unknown_vm_is_a_key_error(rig: Rig) -> None:
    for call in (
        lambda: rig.service.start_backup("vm9"),
        lambda: rig.service.jobs("vm9"),
        lambda: rig.service.restore_points("vm9"),
        lambda: rig.service.disks("vm9"),
    ):
        with pytest.raises(KeyError):
            call()
    assert not rig.service.knows("vm9") and rig.service.knows("vm1")


def test_restart_fails_jobs_left_in_progress(tmp_path: Path) -> None:
    db = tmp_path / "backup.sqlite"
    before = Rig(db)
    accepted = before.service.start_backup("vm1")  # its worker never runs: the fabric "dies"
    started = start_subtask(
        new_job("j-running", "vm2", before.clock.now()), TAKE_SNAPSHOT, before.clock.now()
    )
    before.store.save_job(started)
    before.store.close()

    after = Rig(db)
    after.clock.advance(5)
    failed = after.service.recover_interrupted()
    assert sorted(j.job_id for j in failed) == sorted([accepted.job_id, "j-running"])
    for job in failed:
        stored = after.service.job(job.job_id)
        assert stored is not None and stored.status is JobStatus.FAILED
        assert stored.error == codes.BACKUP_OPERATION_FAILED
        assert stored.ended_at == after.clock.now()
    running = after.service.job("j-running")
    assert running is not None
    assert [str(s.status) for s in running.subtasks] == ["Failed", "NotStarted"]
    assert after.service.recover_interrupted() == []
    assert after.service.start_backup("vm1").status is JobStatus.IN_PROGRESS


def test_storage_status_and_disks(rig: Rig) -> None:
    assert rig.service.storage_status() == {"ready": True, "account_url": rig.storage.account_url}
    (disk,) = rig.service.disks("vm2")
    assert disk.to_json() == {
        "name": "vm2-osdisk.vhd",
        "url": f"{rig.storage.account_url}/vhds/vm2-osdisk.vhd",
        "size_bytes": 30 * 1024**3,
    }
    assert timedelta(seconds=TIMINGS.subtask_timeout) > timedelta(0)
