"""The twin's Microsoft.RecoveryServices provider (lab/platform/arm/recovery_services*.py).

End to end without a lab: the unmodified ``azure-mgmt-recoveryservicesbackup`` (and
``azure-mgmt-recoveryservices`` for the vault) talk over TLS to the twin, whose
:class:`HttpBackupFabric` talks over HTTP to the real control API and backup service
(:class:`ControlApp`, :class:`BackupService`), with storage, the agent and the clock
faked as in the backup service's own tests. So a shape the SDK cannot read, an
operation it cannot follow or a fabric answer the twin misreads fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.recoveryservicesbackup import models as m
from werkzeug.test import Client

from lab.platform.arm import naming
from lab.platform.arm.app import ArmTwin
from lab.platform.arm.fabric import FabricError
from lab.platform.arm.recovery_services_documents import RECOMMENDATIONS, iso_duration
from lab.platform.arm.recovery_services_fabric import HttpBackupFabric
from lab.platform.backup import codes
from tests.unit.backup_fakes import stays_transitioning
from tests.unit.recovery_services_rig import TOKEN, Vault, vault
from tests.unit.test_armtwin import FakePower

__all__ = ["vault"]  # the fixture

# --------------------------------------------------------------------------- vault


def test_vault_get_and_lists(vault: Vault) -> None:
    got = vault.vaults.vaults.get(vault.rg, vault.name)
    assert got.id == naming.vault_id(vault.roster)
    assert got.type == "Microsoft.RecoveryServices/vaults"
    assert got.location == vault.roster.location
    assert [v.name for v in vault.vaults.vaults.list_by_resource_group(vault.rg)] == [vault.name]
    assert [v.name for v in vault.vaults.vaults.list_by_subscription_id()] == [vault.name]
    with pytest.raises(ResourceNotFoundError):
        vault.vaults.vaults.get(vault.rg, "someone-elses-vault")


# --------------------------------------------------------------------------- protected items


def test_every_vm_is_a_protected_item_named_as_azure_names_it(vault: Vault) -> None:
    items = list(vault.backup.backup_protected_items.list(vault.name, vault.rg))
    names = [i.name for i in items]
    rg = vault.rg.lower()
    assert names == [f"VM;iaasvmcontainerv2;{rg};vm1", f"VM;iaasvmcontainerv2;{rg};vm2"]
    props = items[0].properties
    assert props is not None
    # The SDK resolves one level of discriminator: a VM item reads as ProtectedItem, whose
    # subclass fields (AzureIaaSVMProtectedItem's) are there by their REST names.
    assert props.protected_item_type == "Microsoft.Compute/virtualMachines"
    assert props.source_resource_id == naming.vm_resource_id(vault.roster, "vm1")
    assert props.backup_management_type == "AzureIaasVM"
    assert props.policy_id == ""
    assert props["friendlyName"] == "vm1"
    assert props["protectionState"] == "IRPending"  # no recovery point yet
    assert "lastBackupStatus" not in props
    got = vault.backup.protected_items.get(vault.name, vault.rg, *vault.item("vm2"))
    assert got.id == naming.protected_item_id(vault.roster, "vm2")
    containers = list(vault.backup.backup_protection_containers.list(vault.name, vault.rg))
    assert [c.name for c in containers] == [
        naming.backup_container_name(vault.roster, vm) for vm in ("vm1", "vm2")
    ]
    with pytest.raises(ResourceNotFoundError):
        vault.backup.protected_items.get(
            vault.name, vault.rg, "Azure", "IaasVMContainer;iaasvmcontainerv2;x;nobody", "VM;x"
        )


def test_backup_status_finds_the_vault_of_a_vm(vault: Vault) -> None:
    status = vault.backup.backup_status.get(
        vault.roster.location,
        m.BackupStatusRequest(
            resource_type="VM", resource_id=naming.vm_resource_id(vault.roster, "vm1")
        ),
    )
    assert status.protection_status == "Protected"
    assert status.vault_id == naming.vault_id(vault.roster)
    assert (status.container_name, status.protected_item_name) == vault.item("vm1")[1:]


# --------------------------------------------------------------------------- backup now


def _job_of(vault: Vault, headers: dict[str, str]) -> str:
    """The job a trigger started, found as ``az backup protection backup-now`` does."""
    op_id = headers["Azure-AsyncOperation"].split("?")[0].rsplit("/", 1)[-1]
    status = vault.backup.backup_operation_statuses.get(vault.name, vault.rg, op_id)
    assert status.status == "Succeeded"
    assert isinstance(status.properties, m.OperationStatusJobExtendedInfo)
    assert status.properties.job_id
    item_status = vault.backup.protected_item_operation_statuses.get(
        vault.name, vault.rg, *vault.item("vm1"), op_id
    )
    assert item_status.properties.job_id == status.properties.job_id  # type: ignore[union-attr]
    return status.properties.job_id


def test_backup_now_runs_a_job_to_completed(vault: Vault) -> None:
    headers = vault.trigger("vm1")
    assert "/operationsStatus/" in headers["Azure-AsyncOperation"]
    assert "/operationResults/" in headers["Location"]
    job_id = _job_of(vault, headers)
    running = vault.backup.job_details.get(vault.name, vault.rg, job_id)
    assert isinstance(running.properties, m.AzureIaaSVMJob)
    assert running.properties.status == "InProgress"
    assert running.properties.operation == "Backup"
    assert running.properties.entity_friendly_name == "vm1"
    assert running.properties.is_user_triggered is True

    vault.spawn.run_all()
    job = vault.backup.job_details.get(vault.name, vault.rg, job_id).properties
    assert isinstance(job, m.AzureIaaSVMJob)
    assert job.status == "Completed"
    assert job.error_details is None
    assert job.start_time is not None and job.end_time is not None
    assert job.duration == job.end_time - job.start_time
    tasks = job.extended_info.tasks_list  # type: ignore[union-attr]
    assert [(t.task_id, t.status) for t in tasks] == [  # type: ignore[union-attr]
        ("Take Snapshot", "Completed"),
        ("Transfer data to vault", "Completed"),
    ]
    assert all(t.start_time and t.end_time for t in tasks)  # type: ignore[union-attr]

    item = vault.backup.protected_items.get(vault.name, vault.rg, *vault.item("vm1")).properties
    assert item is not None
    assert item["protectionState"] == "Protected"
    assert item["lastBackupStatus"] == "Completed"
    assert item["healthStatus"] == "Passed"
    assert item.last_recovery_point is not None

    points = list(vault.backup.recovery_points.list(vault.name, vault.rg, *vault.item("vm1")))
    assert len(points) == 1
    point = points[0].properties
    assert isinstance(point, m.IaasVMRecoveryPoint)
    assert point.recovery_point_type == "FileSystemConsistent"
    assert [t.type for t in point.recovery_point_tier_details] == ["InstantRP", "HardenedRP"]  # type: ignore[union-attr]
    assert point.recovery_point_time is not None
    name = points[0].name
    assert name is not None
    assert (
        vault.backup.recovery_points.get(vault.name, vault.rg, *vault.item("vm1"), name).name
        == name
    )


def test_a_timed_out_job_reads_as_azure_shows_it(vault: Vault) -> None:
    vault.agent.behaviour = stays_transitioning
    job_id = _job_of(vault, vault.trigger("vm1"))
    vault.spawn.run_all()
    job = vault.backup.job_details.get(vault.name, vault.rg, job_id).properties
    assert isinstance(job, m.AzureIaaSVMJob)
    assert job.status == "Failed"
    (error,) = job.error_details  # type: ignore[misc]
    expected = codes.GUEST_AGENT_SNAPSHOT_TASK_STATUS_ERROR
    assert (error.error_code, error.error_string) == (expected.code, expected.message)
    assert error.recommendations == list(RECOMMENDATIONS[expected.code])
    snapshot = job.extended_info.tasks_list[0]  # type: ignore[union-attr,index]
    assert snapshot.status == "Failed"
    # The sub-task timeout on the lab's clock, shown on Azure's: 20 lab s x 240.
    assert snapshot.duration >= timedelta(minutes=80)  # type: ignore[operator]
    assert job.duration >= timedelta(minutes=80)  # type: ignore[operator]
    raw = json.dumps(job.as_dict())
    for lab_word in ("slot", "queue", "reason", "detail", "task_id"):
        assert lab_word not in raw
    item = vault.backup.protected_items.get(vault.name, vault.rg, *vault.item("vm1")).properties
    assert item is not None and item["healthStatus"] == "ActionRequired"


def test_a_refused_backup_is_a_failed_job(vault: Vault) -> None:
    vault.agent.ready = False
    job_id = _job_of(vault, vault.trigger("vm1"))
    job = vault.backup.job_details.get(vault.name, vault.rg, job_id).properties
    assert job.status == "Failed"  # type: ignore[union-attr]
    assert job.error_details[0].error_code == "UserErrorGuestAgentStatusUnavailable"  # type: ignore[union-attr]


def test_every_job_error_code_has_recommendations() -> None:
    assert {e.code for e in codes.ALL_ERRORS} <= set(RECOMMENDATIONS)
    assert all(RECOMMENDATIONS[e.code] for e in codes.ALL_ERRORS)


# --------------------------------------------------------------------------- jobs list


def test_jobs_list_newest_first_and_filters(vault: Vault) -> None:
    first = _job_of(vault, vault.trigger("vm1"))
    vault.spawn.run_all()
    vault.clock.advance(5)
    vault.agent.behaviour = stays_transitioning
    second = _job_of(vault, vault.trigger("vm1"))
    vault.spawn.run_all()
    jobs = list(vault.backup.backup_jobs.list(vault.name, vault.rg))
    assert [j.name for j in jobs] == [second, first]
    failed = list(vault.backup.backup_jobs.list(vault.name, vault.rg, filter="status eq 'Failed'"))
    assert [j.name for j in failed] == [second]
    both = "operation eq 'Backup' and backupManagementType eq 'AzureIaasVM'"
    assert len(list(vault.backup.backup_jobs.list(vault.name, vault.rg, filter=both))) == 2
    started = jobs[0].properties.start_time  # type: ignore[union-attr]
    assert started is not None
    window = (
        f"startTime eq '{(started - timedelta(seconds=1)):%Y-%m-%d %I:%M:%S %p}' and "
        f"endTime eq '{(started + timedelta(hours=1)):%Y-%m-%d %I:%M:%S %p}'"
    )
    assert [j.name for j in vault.backup.backup_jobs.list(vault.name, vault.rg, filter=window)] == [
        second
    ]
    with pytest.raises(HttpResponseError) as refused:
        list(vault.backup.backup_jobs.list(vault.name, vault.rg, filter="jobId eq 'x'"))
    assert refused.value.status_code == 400
    with pytest.raises(ResourceNotFoundError):
        vault.backup.job_details.get(vault.name, vault.rg, "no-such-job")


# --------------------------------------------------------------------------- policies


def _daily(at: str, days: int = 7) -> m.ProtectionPolicyResource:
    hour, minute = (int(part) for part in at.split(":"))
    moment = datetime(2026, 12, 7, hour, minute, tzinfo=UTC)
    return m.ProtectionPolicyResource(
        properties=m.AzureIaaSVMProtectionPolicy(
            schedule_policy=m.SimpleSchedulePolicy(
                schedule_run_frequency="Daily", schedule_run_times=[moment]
            ),
            retention_policy=m.LongTermRetentionPolicy(
                daily_schedule=m.DailyRetentionSchedule(
                    retention_times=[moment],
                    retention_duration=m.RetentionDuration(count=days, duration_type="Days"),
                )
            ),
            time_zone="UTC",
        )
    )


def test_policies_create_get_list_and_assign(vault: Vault) -> None:
    made = vault.backup.protection_policies.create_or_update(
        vault.name, vault.rg, "Nightly", _daily("14:30", days=12)
    )
    assert made is not None and made.name == "Nightly"
    props = vault.backup.protection_policies.get(vault.name, vault.rg, "Nightly").properties
    assert isinstance(props, m.AzureIaaSVMProtectionPolicy)
    schedule = props.schedule_policy
    assert isinstance(schedule, m.SimpleSchedulePolicy)
    assert schedule.schedule_run_frequency == "Daily"
    (run,) = schedule.schedule_run_times  # type: ignore[misc]
    assert (run.hour, run.minute) == (14, 30)
    assert run > vault.service.azure_clock.now()  # the next run, on the Azure clock
    retention = props.retention_policy
    assert isinstance(retention, m.LongTermRetentionPolicy)
    assert retention.daily_schedule.retention_duration.count == 12  # type: ignore[union-attr]
    assert props.protected_items_count == 0

    poller = vault.backup.protected_items.begin_create_or_update(
        vault.name,
        vault.rg,
        *vault.item("vm2"),
        m.ProtectedItemResource(
            properties=m.AzureIaaSComputeVMProtectedItem(
                policy_id=naming.backup_policy_id(vault.roster, "Nightly"),
                source_resource_id=naming.vm_resource_id(vault.roster, "vm2"),
            )
        ),
    )
    item = poller.result()
    assert item.properties.policy_id == naming.backup_policy_id(vault.roster, "Nightly")  # type: ignore[union-attr]
    assert vault.service.protection("vm2") == {"vm": "vm2", "policy": "Nightly"}
    listed = list(vault.backup.backup_policies.list(vault.name, vault.rg))
    assert [(p.name, p.properties.protected_items_count) for p in listed] == [("Nightly", 1)]  # type: ignore[union-attr]

    moved = vault.backup.protection_policies.create_or_update(
        vault.name, vault.rg, "Nightly", _daily("02:05")
    )
    assert moved is not None
    assert vault.service.store.policy("Nightly").run_time == "02:05"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda p: setattr(p.properties, "time_zone", "Pacific Standard Time"), "UTC"),
        (
            lambda p: setattr(p.properties.schedule_policy, "schedule_run_frequency", "Weekly"),
            "daily",
        ),
        (lambda p: setattr(p.properties.schedule_policy, "schedule_run_times", []), "one time"),
    ],
)
def test_policies_the_lab_cannot_run_are_refused(
    vault: Vault, change: Callable[[Any], None], needle: str
) -> None:
    policy = _daily("10:00")
    change(policy)
    with pytest.raises(HttpResponseError) as refused:
        vault.backup.protection_policies.create_or_update(vault.name, vault.rg, "P1", policy)
    assert refused.value.status_code == 400
    assert needle in str(refused.value)
    assert vault.service.store.policy("P1") is None


def test_assigning_an_unknown_policy_is_refused(vault: Vault) -> None:
    with pytest.raises(HttpResponseError) as refused:
        vault.backup.protected_items.begin_create_or_update(
            vault.name,
            vault.rg,
            *vault.item("vm1"),
            m.ProtectedItemResource(
                properties=m.AzureIaaSComputeVMProtectedItem(
                    policy_id=naming.backup_policy_id(vault.roster, "Nope")
                )
            ),
        ).result()
    assert refused.value.status_code == 400


# --------------------------------------------------------------------------- conventions


def test_answers_carry_the_azure_clock_and_refuse_unknown_api_versions(vault: Vault) -> None:
    client = Client(vault.twin)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    base = f"{naming.vault_id(vault.roster)}/backupJobs"
    vault.clock.advance(60)
    answer = client.get(f"{base}?api-version=2026-10-01", headers=auth)
    assert answer.status_code == 200
    stamped = parsedate_to_datetime(answer.headers["Date"])
    assert abs(stamped - vault.service.azure_clock.now()) < timedelta(seconds=2)
    old = client.get(f"{base}?api-version=2016-12-01", headers=auth)
    assert old.status_code == 200
    refused = client.get(f"{base}?api-version=2099-01-01", headers=auth)
    assert refused.status_code == 400
    assert json.loads(refused.data)["error"]["code"] == "NoRegisteredProviderFound"


def test_a_fabric_without_a_backup_service_is_a_bad_gateway(vault: Vault) -> None:
    broken = HttpBackupFabric("http://127.0.0.1:9", timeout=1)
    with pytest.raises(FabricError):
        broken.backup_jobs()
    twin = ArmTwin(broken, FakePower(), TOKEN, backup=broken)
    client = Client(twin)
    answer = client.get(
        f"{naming.vault_id(vault.roster)}?api-version=2026-11-01",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 502


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "PT0S"),
        (9.8782, "PT9.878S"),
        (95 * 60, "PT1H35M0S"),
        (3600 + 1.5, "PT1H1.5S"),
        (-3, "PT0S"),
    ],
)
def test_iso_durations(seconds: float, text: str) -> None:
    assert iso_duration(timedelta(seconds=seconds)) == text


def test_the_twin_imports_nothing_of_lab_outside_the_platform() -> None:
    """The twin runs on Debian's Python in the host image: stdlib, Werkzeug and docker,
    and of ``lab`` what that image holds, :mod:`lab.platform` (and :mod:`lab.extension`,
    whose duration table the platform's time scale reads)."""
    probe = (
        "import sys, lab.platform.arm.main, lab.platform.arm.recovery_services; "
        "print(sorted(m for m in sys.modules if m.startswith(('lab.', 'azure', 'requests')) "
        "and not m.startswith(('lab.platform', 'lab.extension'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
