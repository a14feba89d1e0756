"""Jobs and restore points survive a restart of the store (the fabric's SQLite file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from lab.platform.backup import codes
from lab.platform.backup.job import (
    TAKE_SNAPSHOT,
    TRANSFER_TO_VAULT,
    JobStatus,
    complete_subtask,
    new_job,
    reject,
    start_subtask,
    with_task,
)
from lab.platform.backup.policy import Policy
from lab.platform.backup.restore_point import RestorePoint, RestorePointDisk
from lab.platform.backup.store import BackupStore

T0 = datetime(2026, 11, 27, 21, 0, 0, tzinfo=UTC)


def completed(job_id: str, vm: str, seq: int) -> tuple[object, RestorePoint]:
    job = with_task(start_subtask(new_job(job_id, vm, T0), TAKE_SNAPSHOT, T0), f"t-{job_id}", seq)
    job = complete_subtask(job, TAKE_SNAPSHOT, T0 + timedelta(seconds=1))
    job = start_subtask(job, TRANSFER_TO_VAULT, T0 + timedelta(seconds=1))
    job = complete_subtask(job, TRANSFER_TO_VAULT, T0 + timedelta(seconds=2))
    disk = RestorePointDisk(f"{vm}-osdisk.vhd", "2026-11-27T21:00:01.0000000Z", f"{vm}/{job_id}/d")
    return job, RestorePoint(f"rp-{job_id}", vm, job_id, T0 + timedelta(seconds=2), (disk,))


def test_jobs_and_restore_points_persist_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "backup.sqlite"
    store = BackupStore(path)
    job, point = completed("j1", "vm1", 4)
    store.finish_job(job, point)  # type: ignore[arg-type]
    refused = reject(new_job("j2", "vm1", T0), codes.RP_COLLECTION_LIMIT_REACHED, T0)
    store.save_job(refused)
    store.close()

    reopened = BackupStore(path)
    assert reopened.job("j1") == job
    assert reopened.job("j2") == refused
    assert reopened.job("nope") is None
    assert [j.job_id for j in reopened.jobs()] == ["j2", "j1"]  # newest first
    assert reopened.restore_points("vm1") == [point]
    assert reopened.count_restore_points("vm1") == 1
    assert reopened.count_restore_points("vm2") == 0
    assert reopened.max_seq_no("vm1") == 4
    assert reopened.max_seq_no("vm2") is None


def test_saving_again_updates_in_place(tmp_path: Path) -> None:
    store = BackupStore(tmp_path / "b.sqlite")
    job = new_job("j1", "vm1", T0)
    store.save_job(job)
    running = start_subtask(job, TAKE_SNAPSHOT, T0)
    store.save_job(running)
    assert store.jobs() == [running]
    assert store.in_progress("vm1") == [running]
    assert store.in_progress("vm2") == []


def test_filters_by_vm_newest_first(tmp_path: Path) -> None:
    store = BackupStore(tmp_path / "b.sqlite")
    for n, vm in enumerate(["vm1", "vm2", "vm1", "vm2", "vm1"]):
        store.save_job(reject(new_job(f"j{n}", vm, T0), codes.BACKUP_OPERATION_FAILED, T0))
    assert [j.job_id for j in store.jobs("vm1")] == ["j4", "j2", "j0"]
    assert [j.job_id for j in store.jobs("vm2")] == ["j3", "j1"]
    assert all(j.status is JobStatus.FAILED for j in store.jobs())


def test_policies_and_their_vms_in_joining_order(tmp_path: Path) -> None:
    store = BackupStore(tmp_path / "b.sqlite")
    store.save_policy(Policy("DailyPolicy", "22:00"))
    store.save_policy(Policy("DailyPolicy", "23:00"))  # a change, not a second policy
    store.save_policy(Policy("Another", "01:00"))
    for vm in ("vm3", "vm1", "vm2"):
        store.protect(vm, "DailyPolicy")
    store.protect("vm3", "Another")
    assert [p.to_record() for p in store.policies()] == [
        {"name": "Another", "run_time": "01:00"},
        {"name": "DailyPolicy", "run_time": "23:00"},
    ]
    assert store.protected_vms("DailyPolicy") == ["vm1", "vm2"]
    assert store.policy_of("vm3") == "Another" and store.policy_of("vm9") is None
    store.unprotect("vm1")
    assert store.protected_vms("DailyPolicy") == ["vm2"]
    assert store.policy("Nope") is None
