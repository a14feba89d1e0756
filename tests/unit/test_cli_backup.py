"""``snaplab backup|jobs|restore-points|policy`` (lab/cli_backup.py, lab/provision/vault.py):
thin clients of the lab's vault through azure-mgmt-recoveryservicesbackup, run here
against the twin and the real backup service with fakes behind them
(``tests/unit/recovery_services_rig.py``)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from click.testing import CliRunner

from lab import cli_backup
from lab.cli import cli
from lab.errors import BadInput, UnknownVm
from lab.provision.vault import LabVault, resolve_run_time, summary
from tests.unit.backup_fakes import stays_transitioning
from tests.unit.recovery_services_rig import SCALE, SUBTASK_TIMEOUT, Vault, vault

__all__ = ["vault"]  # the fixture


@pytest.fixture
def lab_vault(vault: Vault) -> LabVault:
    return LabVault(vault.backup, vault.roster)


def test_backup_now_follow_and_list(vault: Vault, lab_vault: LabVault) -> None:
    job = lab_vault.backup_now("vm1")
    assert (job["vm"], job["status"], job["trigger"]) == ("vm1", "InProgress", "OnDemand")
    vault.spawn.run_all()
    done = lab_vault.follow(job, lambda _: None)
    assert done["status"] == "Completed" and done["error_code"] is None
    assert [s["name"] for s in done["subtasks"]] == ["Take Snapshot", "Transfer data to vault"]
    assert all(s["status"] == "Completed" and s["started_at"] for s in done["subtasks"])
    assert done["seconds"] is not None
    assert f"{done['job_id']}  vm1  Completed in " in summary(done)
    assert [j["job_id"] for j in lab_vault.jobs("vm1")] == [job["job_id"]]
    assert lab_vault.jobs("vm2") == []
    (point,) = lab_vault.restore_points("vm1")
    assert point["consistency"] == "FileSystemConsistent"
    assert point["tiers"] == ["InstantRP", "HardenedRP"]
    assert point["disks"] == 1


def test_a_failed_job_shows_azures_error_and_duration(vault: Vault, lab_vault: LabVault) -> None:
    vault.agent.behaviour = stays_transitioning
    job = lab_vault.backup_now("vm2")
    vault.spawn.run_all()
    failed = lab_vault.job(job["job_id"])
    assert failed["status"] == "Failed"
    assert failed["error_code"] == "GuestAgentSnapshotTaskStatusError"
    assert failed["error_message"].startswith("Could not communicate with the VM agent")
    assert failed["recommendations"]
    # The sub-task timeout (lab seconds) as Azure's clock shows it.
    assert failed["subtasks"][0]["seconds"] >= SUBTASK_TIMEOUT * SCALE
    line = summary(failed)
    assert "Failed GuestAgentSnapshotTaskStatusError" in line and "in 1:2" in line


def test_unknown_vm_is_bad_input(lab_vault: LabVault) -> None:
    with pytest.raises(UnknownVm):
        lab_vault.backup_now("nobody")
    with pytest.raises(UnknownVm):
        lab_vault.jobs("nobody")


def test_policies_set_list_and_move(vault: Vault, lab_vault: LabVault) -> None:
    now = lab_vault.azure_now()
    assert abs(now - vault.service.azure_clock.now()) < timedelta(seconds=2)
    made = lab_vault.set_policy("Nightly", "+15m", ["vm1", "vm2"])
    assert made["vms"] == ["vm1", "vm2"]
    assert made["retention_days"] == 30
    assert 3.0 <= made["next_run_in_lab_seconds"] <= 4.5  # 15-16 Azure minutes at 240
    view = lab_vault.policies()
    assert set(view) == {"azure_now", "time_scale", "host_snapshot_slots", "policies"}
    assert view["time_scale"] == vault.roster.time_scale
    lab_vault.set_policy("Later", "03:30", ["vm2"])
    moved = {p["name"]: p["vms"] for p in lab_vault.policies()["policies"]}
    assert moved == {"Nightly": ["vm1"], "Later": ["vm2"]}
    assert lab_vault.policy("Later")["schedule_run_time"] == "03:30"
    with pytest.raises(BadInput):
        lab_vault.set_policy("9-not-a-name", "03:30", [])
    with pytest.raises(BadInput):
        lab_vault.policy("Missing")


def test_wait_for_a_policys_scheduled_run(vault: Vault, lab_vault: LabVault) -> None:
    lab_vault.set_policy("Soon", "+1m", ["vm1"])
    found: list[list[dict[str, object]]] = []
    waiter = threading.Thread(
        target=lambda: found.append(lab_vault.wait_for_policy_runs(["Soon"], print, 20.0))
    )
    waiter.start()
    time.sleep(1.0)  # the waiter has noted the jobs before the run
    vault.service.scheduler.tick()
    vault.clock.advance(1.0)  # 4 Azure minutes: the run time passes
    vault.service.scheduler.tick()
    vault.spawn.run_all()
    waiter.join(timeout=20)
    (runs,) = found
    assert [(j["policy"], j["vm"], j["status"], j["trigger"]) for j in runs] == [
        ("Soon", "vm1", "Completed", "Scheduled")
    ]


def test_run_time_specs() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 12, 7, 23, 50, 30, tzinfo=UTC)
    assert resolve_run_time("7:05", now) == (7, 5)
    assert resolve_run_time("+15m", now) == (0, 6)
    assert resolve_run_time("+2h", now) == (1, 51)
    for bad in ("25:00", "noon", "+5d"):
        with pytest.raises(BadInput):
            resolve_run_time(bad, now)


def test_cli_prints_one_error_line_for_an_unknown_vm(
    lab_vault: LabVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_backup, "_vault", lambda lab_name: lab_vault)
    result = CliRunner().invoke(cli, ["backup", "nobody"], obj={})
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: VM 'nobody': lab 'unit' has no such VM (it has: vm1, vm2)"
    ]
    listed = CliRunner().invoke(cli, ["jobs", "--json"], obj={})
    assert listed.exit_code == 0 and '"jobs": []' in listed.output
