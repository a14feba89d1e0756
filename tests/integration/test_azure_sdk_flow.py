"""Issue 8's acceptance flow: a lab driven with the Azure SDKs only, as on Azure.

With azure-mgmt-compute, azure-mgmt-network and azure-mgmt-recoveryservicesbackup (and
nothing of the lab's but its credential and endpoint): find the VM's NSG through its NIC,
deny the ``Storage`` service tag outbound, Backup now, read the failed job's
``errorDetails``, delete the rule, Backup now again, see the job complete and a recovery
point appear. Run Command is proved in test_arm_compute.py (healthy VM, agent stopped).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker
import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import SecurityRule
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
from azure.mgmt.recoveryservicesbackup import models as m

from lab.azure_sdk import backup_client, compute_client, network_client
from lab.provision import lab as labs
from lab.provision.spec import VmSpec
from tests.integration.conftest import RUN_ID, _bring_up

pytestmark = pytest.mark.integration

VM = "vm1"
RULE = "DenyStorageOut"
JOB_SECONDS = 180


@dataclass
class Azure:
    compute: ComputeManagementClient
    network: NetworkManagementClient
    backup: RecoveryServicesBackupClient
    group: str


@pytest.fixture(scope="module")
def azure(docker_client: docker.DockerClient) -> Iterator[Azure]:
    running = _bring_up(docker_client, f"sdk{RUN_ID}"[:20], (VmSpec(VM),))
    try:
        arm = labs.arm_endpoint(docker_client, running.name)
        args = (arm.url, arm.token, arm.subscription_id, arm.ca_file)
        yield Azure(
            compute_client(*args), network_client(*args), backup_client(*args), arm.resource_group
        )
    finally:
        labs.down(docker_client, running.name)


def _name_after(resource_id: str, kind: str) -> str:
    parts = resource_id.split("/")
    return parts[[p.lower() for p in parts].index(kind.lower()) + 1]


def _nsg(azure: Azure) -> tuple[str, str]:
    """(resource group, name) of the VM's NSG, found as on Azure: VM -> NIC -> NSG."""
    vm = azure.compute.virtual_machines.get(azure.group, VM)
    nic_id = vm.network_profile.network_interfaces[0].id
    nic = azure.network.network_interfaces.get(
        _name_after(nic_id, "resourceGroups"), _name_after(nic_id, "networkInterfaces")
    )
    nsg_id = nic.network_security_group.id
    return _name_after(nsg_id, "resourceGroups"), _name_after(nsg_id, "networkSecurityGroups")


def _backup_now(azure: Azure) -> m.AzureIaaSVMJob:
    """Backup now, followed to its job's end, as ``az backup protection backup-now`` does."""
    vm = azure.compute.virtual_machines.get(azure.group, VM)
    status = azure.backup.backup_status.get(
        vm.location, m.BackupStatusRequest(resource_type="VM", resource_id=vm.id)
    )
    vault = str(status.vault_id).rsplit("/", 1)[-1]
    vault_group = _name_after(str(status.vault_id), "resourceGroups")
    fabric = str(getattr(status.fabric_name, "value", status.fabric_name))
    headers: dict[str, str] = {}

    def keep(response: Any, body: Any, extra: Any) -> None:
        headers.update(response.http_response.headers)

    azure.backup.backups.trigger(
        vault,
        vault_group,
        fabric,
        str(status.container_name),
        str(status.protected_item_name),
        m.BackupRequestResource(properties=m.IaasVMBackupRequest()),
        cls=keep,
    )
    operation = headers["Azure-AsyncOperation"].split("?")[0].rsplit("/", 1)[-1]
    done = azure.backup.backup_operation_statuses.get(vault, vault_group, operation)
    job_id = str(done.properties.job_id)
    deadline = time.monotonic() + JOB_SECONDS
    while True:
        job = azure.backup.job_details.get(vault, vault_group, job_id).properties
        assert isinstance(job, m.AzureIaaSVMJob)
        if job.status != "InProgress":
            return job
        assert time.monotonic() < deadline, f"job {job_id} still InProgress"
        time.sleep(1)


def _recovery_points(azure: Azure) -> int:
    vm = azure.compute.virtual_machines.get(azure.group, VM)
    status = azure.backup.backup_status.get(
        vm.location, m.BackupStatusRequest(resource_type="VM", resource_id=vm.id)
    )
    vault = str(status.vault_id).rsplit("/", 1)[-1]
    points = azure.backup.recovery_points.list(
        vault,
        _name_after(str(status.vault_id), "resourceGroups"),
        str(getattr(status.fabric_name, "value", status.fabric_name)),
        str(status.container_name),
        str(status.protected_item_name),
    )
    return len(list(points))


def _wait_ready(azure: Azure, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        agent = azure.compute.virtual_machines.instance_view(azure.group, VM).vm_agent
        if agent and agent.statuses and agent.statuses[0].display_status == "Ready":
            return
        assert time.monotonic() < deadline, "agent not Ready"
        time.sleep(2)


def test_deny_storage_fails_the_backup_and_removing_the_rule_clears_it(azure: Azure) -> None:
    _wait_ready(azure)
    nsg_group, nsg = _nsg(azure)
    azure.network.security_rules.begin_create_or_update(
        nsg_group,
        nsg,
        RULE,
        SecurityRule(
            protocol="*",
            source_address_prefix="*",
            source_port_range="*",
            destination_address_prefix="Storage",
            destination_port_range="*",
            access="Deny",
            priority=100,
            direction="Outbound",
        ),
    ).result()
    try:
        failed = _backup_now(azure)
        assert failed.status == "Failed"
        assert failed.error_details, "a failed job carries errorDetails"
        (error,) = failed.error_details
        assert str(error.error_code) == "ExtensionSnapshotFailedNoNetwork", error
        assert error.error_string and error.recommendations
    finally:
        azure.network.security_rules.begin_delete(nsg_group, nsg, RULE).result()
    names = [r.name for r in azure.network.security_rules.list(nsg_group, nsg)]
    assert RULE not in names
    _wait_ready(azure)
    before = _recovery_points(azure)
    done = _backup_now(azure)
    errors = [(e.error_code, e.error_string) for e in done.error_details or []]
    assert done.status == "Completed", errors
    assert _recovery_points(azure) == before + 1
