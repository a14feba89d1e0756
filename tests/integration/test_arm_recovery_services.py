"""Azure Backup through the twin's Microsoft.RecoveryServices, on a real lab, with the SDKs
only (azure-mgmt-compute, azure-mgmt-recoveryservices, azure-mgmt-recoveryservicesbackup).

Backup now on a healthy VM: the job runs to Completed with its duration and both tasks,
and a recovery point appears. Then the agent is stopped inside the guest (the test's own
doing, through Docker; the SDK has no part in it): the next job fails with Azure's code in
its ``errorDetails``. Last (its schedule may start a job later), a policy is made and the
VM put on it. The lab has its own name and is always removed.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import docker
import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
from azure.mgmt.recoveryservicesbackup import models as m

from lab.azure_sdk import backup_client, compute_client, vaults_client
from lab.provision import lab as labs
from lab.provision.spec import VmSpec
from tests.integration.conftest import RUN_ID, RunningLab, _bring_up

pytestmark = pytest.mark.integration

VM = "vm1"
JOB_SECONDS = 180  # the scenario catalog's backup limit


@dataclass
class Vault:
    lab: RunningLab
    compute: ComputeManagementClient
    backup: RecoveryServicesBackupClient
    name: str
    group: str
    item: tuple[str, str, str]


@pytest.fixture(scope="module")
def vault(docker_client: docker.DockerClient) -> Iterator[Vault]:
    running = _bring_up(docker_client, f"he{RUN_ID}rs"[:20], (VmSpec(VM),))
    try:
        arm = labs.arm_endpoint(docker_client, running.name)
        args = (arm.url, arm.token, arm.subscription_id, arm.ca_file)
        compute = compute_client(*args)
        backup = backup_client(*args)
        (found,) = list(vaults_client(*args).vaults.list_by_resource_group(arm.resource_group))
        machine = compute.virtual_machines.get(arm.resource_group, VM)
        status = backup.backup_status.get(
            machine.location,
            m.BackupStatusRequest(resource_type="VM", resource_id=machine.id),
        )
        assert status.vault_id == found.id
        fabric = status.fabric_name  # an enum member of the SDK's (FabricName.AZURE)
        item = (
            str(getattr(fabric, "value", fabric)),
            str(status.container_name),
            str(status.protected_item_name),
        )
        yield Vault(running, compute, backup, str(found.name), arm.resource_group, item)
    finally:
        labs.down(docker_client, running.name)


def _backup_now(vault: Vault) -> str:
    headers: dict[str, str] = {}

    def keep(response: Any, body: Any, extra: Any) -> None:
        headers.update(response.http_response.headers)

    vault.backup.backups.trigger(
        vault.name,
        vault.group,
        *vault.item,
        m.BackupRequestResource(properties=m.IaasVMBackupRequest()),
        cls=keep,
    )
    operation = headers["Azure-AsyncOperation"].split("?")[0].rsplit("/", 1)[-1]
    status = vault.backup.backup_operation_statuses.get(vault.name, vault.group, operation)
    assert status.status == "Succeeded", status
    assert isinstance(status.properties, m.OperationStatusJobExtendedInfo)
    return str(status.properties.job_id)


def _job(vault: Vault, job_id: str) -> m.AzureIaaSVMJob:
    deadline = time.monotonic() + JOB_SECONDS
    while True:
        job = vault.backup.job_details.get(vault.name, vault.group, job_id).properties
        assert isinstance(job, m.AzureIaaSVMJob)
        if job.status != "InProgress":
            return job
        assert time.monotonic() < deadline, f"job {job_id} still InProgress"
        time.sleep(1)


def _agent_ready(vault: Vault, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        agent = vault.compute.virtual_machines.instance_view(vault.group, VM).vm_agent
        if agent and agent.statuses and agent.statuses[0].display_status == "Ready":
            return
        assert time.monotonic() < deadline, "agent not Ready"
        time.sleep(2)


def _in_guest(vault: Vault, command: str) -> None:
    container = vault.lab.roster.guest_by_name(VM).container  # type: ignore[union-attr]
    subprocess.run(["docker", "exec", container, "sh", "-c", command], check=True, timeout=90)


def test_backup_now_completes_with_tasks_and_a_recovery_point(vault: Vault) -> None:
    _agent_ready(vault)
    before = list(vault.backup.recovery_points.list(vault.name, vault.group, *vault.item))
    job = _job(vault, _backup_now(vault))
    errors: Any = [(e.error_code, e.error_string) for e in job.error_details or []]
    assert job.status == "Completed", errors
    assert job.entity_friendly_name == VM and job.operation == "Backup"
    assert job.duration is not None and job.duration > timedelta(0)
    assert job.start_time is not None and job.end_time is not None
    tasks = job.extended_info.tasks_list if job.extended_info else None
    assert tasks is not None
    assert [(t.task_id, t.status) for t in tasks] == [
        ("Take Snapshot", "Completed"),
        ("Transfer data to vault", "Completed"),
    ]
    assert all(t.start_time and t.end_time and t.duration for t in tasks)
    after = list(vault.backup.recovery_points.list(vault.name, vault.group, *vault.item))
    assert len(after) == len(before) + 1
    newest = max(after, key=lambda p: p.properties.recovery_point_time)  # type: ignore[union-attr]
    point = newest.properties
    assert isinstance(point, m.IaasVMRecoveryPoint)
    assert point.recovery_point_type == "FileSystemConsistent"
    assert point.recovery_point_time is not None
    assert abs(point.recovery_point_time - job.end_time) < timedelta(hours=1)
    item = vault.backup.protected_items.get(vault.name, vault.group, *vault.item).properties
    assert item is not None and item["lastBackupStatus"] == "Completed"


def test_with_the_agent_stopped_the_job_fails_with_azures_code(vault: Vault) -> None:
    _agent_ready(vault)
    _in_guest(vault, "systemctl stop walinuxagent")
    try:
        job = _job(vault, _backup_now(vault))
        assert job.status == "Failed"
        assert job.error_details
        (error,) = job.error_details
        # Started while the agent's last status is fresh, the snapshot sub-task times out;
        # later, the pre-check refuses the job: both are Azure's codes for a dead agent.
        assert str(error.error_code) in (
            "GuestAgentSnapshotTaskStatusError",
            "UserErrorGuestAgentStatusUnavailable",
        ), error
        assert error.error_string and error.recommendations
        failed = list(
            vault.backup.backup_jobs.list(vault.name, vault.group, filter="status eq 'Failed'")
        )
        assert [j.name for j in failed][:1] == [job.activity_id]
    finally:
        _in_guest(vault, "systemctl start walinuxagent")
    _agent_ready(vault)


def test_a_policy_is_made_and_the_vm_put_on_it(vault: Vault) -> None:
    at = datetime(2026, 1, 1, 3, 30, tzinfo=UTC)
    made = vault.backup.protection_policies.create_or_update(
        vault.name,
        vault.group,
        "NightlyHE",
        m.ProtectionPolicyResource(
            properties=m.AzureIaaSVMProtectionPolicy(
                schedule_policy=m.SimpleSchedulePolicy(
                    schedule_run_frequency="Daily", schedule_run_times=[at]
                ),
                time_zone="UTC",
            )
        ),
    )
    assert made is not None and made.id
    vault.backup.protected_items.begin_create_or_update(
        vault.name,
        vault.group,
        *vault.item,
        m.ProtectedItemResource(properties=m.AzureIaaSComputeVMProtectedItem(policy_id=made.id)),
    ).result()
    (policy,) = list(vault.backup.backup_policies.list(vault.name, vault.group))
    assert policy.properties.protected_items_count == 1  # type: ignore[union-attr]
    item = vault.backup.protected_items.get(vault.name, vault.group, *vault.item).properties
    assert item is not None and item.policy_id == made.id
