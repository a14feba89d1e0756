"""Microsoft.RecoveryServices' JSON documents: the vault, protected items, backup jobs,
policies, recovery points and the operation statuses of "Backup now".

The shapes and field names are those ``azure-mgmt-recoveryservicesbackup`` reads from
Azure (the REST specs' examples: ``AzureIaaSVMJob``, ``AzureIaaSComputeVMProtectedItem``,
``AzureIaaSVMProtectionPolicy``, ``IaasVMRecoveryPoint``), filled with what the fabric's
backup service did. They hold nothing the service does not show Azure's way: a job's
``errorDetails`` carry Azure's code, its message and Azure's generic recommendations for
that code, never what the lab knows behind it.

**Time.** The lab's Azure clock runs ``time_scale`` times faster than its wall clock
(240 by default: an Azure hour is 15 lab seconds), and the policies' run times are
written on it. So every time in these documents is on that clock too, mapped from the
fabric's wall-clock record with :class:`AzureTime`: a scheduled job starts at its
policy's run time, a sub-task that ran into the 95-minute snapshot timeout lasts
``PT1H35M`` (23.75 lab seconds), and a recovery point is as old as Azure would say.

Where the lab knowingly differs: the REST spec types ``errorDetails[].errorCode`` as an
integer (an internal number Microsoft does not publish); the lab puts the code the
portal shows there (``GuestAgentSnapshotTaskStatusError``), which the Python SDK passes
through as it comes.

Pure: no clocks of its own, no state, no I/O. Callers pass everything in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lab.platform.arm import naming
from lab.platform.arm.conventions import JsonObject
from lab.platform.arm.recovery_services_fabric import (
    FabricJob,
    FabricPolicies,
    FabricPolicy,
    FabricRestorePoint,
    FabricTask,
)
from lab.platform.roster import Roster

VAULT_TYPE = "Microsoft.RecoveryServices/vaults"
JOB_TYPE = f"{VAULT_TYPE}/backupJobs"
POLICY_TYPE = f"{VAULT_TYPE}/backupPolicies"
CONTAINER_TYPE = f"{VAULT_TYPE}/backupFabrics/protectionContainers"
ITEM_TYPE = f"{CONTAINER_TYPE}/protectedItems"
RECOVERY_POINT_TYPE = f"{ITEM_TYPE}/recoveryPoints"

BACKUP_MANAGEMENT_TYPE = "AzureIaasVM"
VM_ITEM_TYPE = "Microsoft.Compute/virtualMachines"
# Azure's default for a new policy's daily retention (its DefaultPolicy keeps 30 days).
DEFAULT_RETENTION_DAYS = 30
# Instant restore snapshots kept by a standard policy (days).
INSTANT_RP_RETENTION_DAYS = 2

# The restore point's consistency as the backup service records it, and the
# recoveryPointType Azure shows for it.
_RECOVERY_POINT_TYPES = {
    "ApplicationConsistent": "AppConsistent",
    "FileSystemConsistent": "FileSystemConsistent",
    "CrashConsistent": "CrashConsistent",
}

# Azure's generic advice per job error code, in the spirit of the troubleshooting
# article's "recommended action" for each (shared/domain/FACTS.md). The same for every
# job with the code, so it never tells which of the code's causes is at work.
RECOMMENDATIONS: dict[str, tuple[str, ...]] = {
    "GuestAgentSnapshotTaskStatusError": (
        "Ensure the VM agent is installed, up to date and running on the VM.",
        "Ensure the VM can reach Azure Storage and the Azure platform (168.63.129.16).",
        "Ensure the VM is not overloaded during the backup window, then retry the backup.",
    ),
    "UserErrorGuestAgentStatusUnavailable": (
        "Ensure the VM agent is installed and running, and that the VM is running.",
        "Ensure the VM has network connectivity to the Azure platform, then retry.",
    ),
    "ExtensionSnapshotFailedNoNetwork": (
        "Ensure the VM can reach Azure Storage: check network security group rules, the "
        "guest firewall and proxy settings, then retry the backup.",
    ),
    "ExtensionOperationFailedForManagedDisks": (
        "Check the VMSnapshot extension's logs in "
        "/var/log/azure/Microsoft.Azure.RecoveryServices.VMSnapshotLinux.",
        "Uninstall the VMSnapshot extension and retry: the next backup installs it again.",
    ),
    "UserErrorVmProvisioningStateFailed": (
        "Bring the VM back to a running state with provisioning state Succeeded, then retry.",
    ),
    "UserErrorRpCollectionLimitReached": (
        "Remove locks on the restore point collection's resource group so older restore "
        "points can be cleaned up, then retry.",
    ),
    "UserErrorBackupOperationInProgress": (
        "Wait for the backup job in progress to finish, then retry.",
    ),
    "BackUpOperationFailed": ("Retry the operation in a few minutes.",),
}


@dataclass(frozen=True)
class AzureTime:
    """The lab's Azure clock, read once: maps the fabric's wall-clock moments onto it.

    ``azure_now`` and ``wall_now`` are the same moment on both clocks; a wall-clock
    moment ``t`` is ``azure_now - (wall_now - t) * scale`` on the Azure clock."""

    azure_now: datetime
    wall_now: datetime
    scale: float

    @classmethod
    def of(cls, policies: FabricPolicies, wall_now: datetime) -> AzureTime:
        return cls(policies.azure_now, wall_now, policies.time_scale)

    def at(self, wall: datetime) -> datetime:
        return self.azure_now - (self.wall_now - wall) * self.scale

    def span(self, start: datetime, end: datetime | None) -> timedelta:
        """How long from ``start`` to ``end`` (or now), in Azure time."""
        return ((end or self.wall_now) - start) * self.scale


def azure_timestamp(moment: datetime) -> str:
    """UTC with microseconds and ``Z``, as Azure Backup writes its times."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def iso_duration(span: timedelta) -> str:
    """An ISO 8601 duration as Azure Backup writes it: ``PT1H35M0S``, ``PT9.878S``."""
    total = max(span.total_seconds(), 0.0)
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return (
        "PT"
        + (f"{int(hours)}H" if hours else "")
        + (f"{int(minutes)}M" if minutes else "")
        + f"{text}S"
    )


# ---------------------------------------------------------------------- vault


def vault_document(roster: Roster) -> JsonObject:
    return {
        "id": naming.vault_id(roster),
        "name": naming.vault_name(roster),
        "type": VAULT_TYPE,
        "location": roster.location,
        "tags": {},
        "sku": {"name": "Standard", "tier": "Standard"},
        "properties": {
            "provisioningState": "Succeeded",
            "privateEndpointStateForBackup": "None",
            "privateEndpointStateForSiteRecovery": "None",
        },
    }


# ---------------------------------------------------------------------- protected items


def container_document(roster: Roster, vm: str) -> JsonObject:
    """The VM's protection container (``IaasVMContainer;iaasvmcontainerv2;<rg>;<vm>``)."""
    name = naming.backup_container_name(roster, vm)
    return {
        "id": f"{naming.vault_id(roster)}/backupFabrics/{naming.BACKUP_FABRIC}"
        f"/protectionContainers/{name}",
        "name": name,
        "type": CONTAINER_TYPE,
        "properties": {
            "containerType": VM_ITEM_TYPE,
            "friendlyName": vm,
            "backupManagementType": BACKUP_MANAGEMENT_TYPE,
            "registrationStatus": "Registered",
            "healthStatus": "Healthy",
            "virtualMachineId": naming.vm_resource_id(roster, vm),
            "virtualMachineVersion": "Compute",
            "resourceGroup": roster.resource_group,
        },
    }


def protected_item_document(
    roster: Roster,
    vm: str,
    policy: FabricPolicy | None,
    jobs: Sequence[FabricJob],
    points: Sequence[FabricRestorePoint],
    clock: AzureTime,
) -> JsonObject:
    """The VM as a protected item of the lab's vault.

    Every VM of a lab is protected by its vault, so "Backup now" works on each; a VM on
    a policy names it in ``policyId``, one on none has an empty ``policyId`` and no
    scheduled backups. ``jobs`` are the VM's, newest first; ``points`` its restore
    points. Before its first recovery point the item is ``IRPending``, as Azure's
    is until the initial backup."""
    vm_id = naming.vm_resource_id(roster, vm)
    finished = next((j for j in jobs if j.status != "InProgress"), None)
    properties: JsonObject = {
        "protectedItemType": VM_ITEM_TYPE,
        "backupManagementType": BACKUP_MANAGEMENT_TYPE,
        "workloadType": "VM",
        "containerName": naming.backup_container_short_name(roster, vm),
        "sourceResourceId": vm_id,
        "virtualMachineId": vm_id,
        "friendlyName": vm,
        "policyId": naming.backup_policy_id(roster, policy.name) if policy else "",
        "protectionState": "Protected" if points else "IRPending",
        "protectionStatus": "Unhealthy" if finished and finished.status == "Failed" else "Healthy",
        "healthStatus": "ActionRequired" if finished and finished.status == "Failed" else "Passed",
        "vaultId": naming.vault_id(roster),
        "sourceLocation": roster.location,
    }
    if policy is not None:
        properties["policyName"] = policy.name
        properties["policyType"] = "V1"
    if finished is not None:
        properties["lastBackupStatus"] = finished.status
        properties["lastBackupTime"] = azure_timestamp(clock.at(finished.started_at))
    if points:
        latest = max(points, key=lambda p: p.created_at)
        properties["lastRecoveryPoint"] = azure_timestamp(clock.at(latest.created_at))
    return {
        "id": naming.protected_item_id(roster, vm),
        "name": naming.protected_item_name(roster, vm),
        "type": ITEM_TYPE,
        "properties": properties,
    }


def backup_status_document(roster: Roster, vm: str, policy: FabricPolicy | None) -> JsonObject:
    """``POST .../locations/<loc>/backupStatus`` for a lab VM: protected, by the vault."""
    doc: JsonObject = {
        "protectionStatus": "Protected",
        "vaultId": naming.vault_id(roster),
        "fabricName": naming.BACKUP_FABRIC,
        "containerName": naming.backup_container_name(roster, vm),
        "protectedItemName": naming.protected_item_name(roster, vm),
    }
    if policy is not None:
        doc["policyName"] = policy.name
    return doc


# ---------------------------------------------------------------------- jobs


def job_document(roster: Roster, job: FabricJob, clock: AzureTime) -> JsonObject:
    """A backup job as ``AzureIaaSVMJob`` (``backupJobs/<id>``)."""
    properties: JsonObject = {
        "jobType": "AzureIaaSVMJob",
        "entityFriendlyName": job.vm,
        "backupManagementType": BACKUP_MANAGEMENT_TYPE,
        "operation": "Backup",
        "status": job.status,
        "startTime": azure_timestamp(clock.at(job.started_at)),
        "duration": iso_duration(clock.span(job.started_at, job.ended_at)),
        "activityId": job.job_id,
        "virtualMachineVersion": "Compute",
        "isUserTriggered": job.trigger != "Scheduled",
        "extendedInfo": {
            "tasksList": [_task_document(t, clock) for t in job.tasks],
            "propertyBag": {"VM Name": job.vm},
        },
    }
    if job.ended_at is not None:
        properties["endTime"] = azure_timestamp(clock.at(job.ended_at))
    if job.error_code:
        properties["errorDetails"] = [
            {
                "errorCode": job.error_code,
                "errorString": job.error_message or "",
                "recommendations": list(RECOMMENDATIONS.get(job.error_code, ())),
            }
        ]
    return {
        "id": naming.backup_job_id(roster, job.job_id),
        "name": job.job_id,
        "type": JOB_TYPE,
        "properties": properties,
    }


def _task_document(task: FabricTask, clock: AzureTime) -> JsonObject:
    doc: JsonObject = {"taskId": task.name, "status": task.status, "duration": "PT0S"}
    if task.started_at is not None:
        doc["startTime"] = azure_timestamp(clock.at(task.started_at))
        doc["duration"] = iso_duration(clock.span(task.started_at, task.ended_at))
    if task.ended_at is not None:
        doc["endTime"] = azure_timestamp(clock.at(task.ended_at))
    return doc


# ---------------------------------------------------------------------- policies


def policy_document(
    roster: Roster, policy: FabricPolicy, retention_days: int, clock: AzureTime
) -> JsonObject:
    """An ``AzureIaasVM`` policy: daily at its run time (UTC, the lab's Azure clock).

    ``scheduleRunTimes`` holds one moment whose time of day is the run time; its date
    is the next run's, so the document also says when the policy runs next."""
    run = next_run(policy.run_time, clock.azure_now)
    moment = azure_timestamp(run).replace(".000000Z", "Z")
    return {
        "id": naming.backup_policy_id(roster, policy.name),
        "name": policy.name,
        "type": POLICY_TYPE,
        "properties": {
            "backupManagementType": BACKUP_MANAGEMENT_TYPE,
            "policyType": "V1",
            "protectedItemsCount": len(policy.vms),
            "instantRpRetentionRangeInDays": INSTANT_RP_RETENTION_DAYS,
            "timeZone": "UTC",
            "schedulePolicy": {
                "schedulePolicyType": "SimpleSchedulePolicy",
                "scheduleRunFrequency": "Daily",
                "scheduleRunTimes": [moment],
                "scheduleWeeklyFrequency": 0,
            },
            "retentionPolicy": {
                "retentionPolicyType": "LongTermRetentionPolicy",
                "dailySchedule": {
                    "retentionTimes": [moment],
                    "retentionDuration": {"count": retention_days, "durationType": "Days"},
                },
            },
        },
    }


def next_run(run_time: str, after: datetime) -> datetime:
    """The first ``HH:MM`` (UTC) strictly after ``after``."""
    hour, minute = (int(part) for part in run_time.split(":"))
    candidate = after.astimezone(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)
    while candidate <= after:
        candidate += timedelta(days=1)
    return candidate


# ---------------------------------------------------------------------- recovery points


def recovery_point_document(
    roster: Roster, vm: str, point: FabricRestorePoint, clock: AzureTime
) -> JsonObject:
    """An ``IaasVMRecoveryPoint``: a snapshot of every disk (the instant tier) and its
    copy in the vault (the vault-standard, "hardened" tier)."""
    disks = len(point.disks)
    return {
        "id": f"{naming.protected_item_id(roster, vm)}/recoveryPoints/{point.id}",
        "name": point.id,
        "type": RECOVERY_POINT_TYPE,
        "properties": {
            "objectType": "IaasVMRecoveryPoint",
            "recoveryPointType": _RECOVERY_POINT_TYPES.get(point.consistency, point.consistency),
            "recoveryPointTime": azure_timestamp(clock.at(point.created_at)),
            "recoveryPointTierDetails": [
                {"type": "InstantRP", "status": "Valid"},
                {"type": "HardenedRP", "status": "Valid"},
            ],
            "recoveryPointAdditionalInfo": "",
            "sourceVMStorageType": "NormalStorage",
            "isSourceVMEncrypted": False,
            "isManagedVirtualMachine": True,
            "isInstantIlrSessionActive": False,
            "osType": "Linux",
            "recoveryPointDiskConfiguration": {
                "numberOfDisksIncludedInBackup": disks,
                "numberOfDisksAttachedToVm": disks,
            },
        },
    }


# ---------------------------------------------------------------------- operations


def operation_status_document(
    op_id: str, status: str, started: datetime, ended: datetime | None, job_id: str | None
) -> JsonObject:
    """An Azure Backup operation status; a finished "Backup now" names its job."""
    doc: JsonObject = {
        "id": op_id,
        "name": op_id,
        "status": status,
        "startTime": azure_timestamp(started),
    }
    if ended is not None:
        doc["endTime"] = azure_timestamp(ended)
    if job_id is not None:
        doc["properties"] = {"objectType": "OperationStatusJobExtendedInfo", "jobId": job_id}
    return doc
