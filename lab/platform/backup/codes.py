"""Azure Backup's job error codes and the exact messages the portal shows with them.

One table, so a code and its message can never drift apart and every failure the lab
produces reads exactly as a real job's would (strings from the Azure Backup
troubleshooting article, see ``shared/domain/FACTS.md`` §1). The extension's own
numeric codes are mapped to portal codes here too, as Azure Backup does.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.extension.protocol import CODE_NO_NETWORK


@dataclass(frozen=True)
class JobError:
    """An Azure Backup job error: the code and the message shown with it."""

    code: str
    message: str


GUEST_AGENT_SNAPSHOT_TASK_STATUS_ERROR = JobError(
    "GuestAgentSnapshotTaskStatusError",
    "Could not communicate with the VM agent for snapshot status - Snapshot VM sub-task timed out",
)
GUEST_AGENT_STATUS_UNAVAILABLE = JobError(
    "UserErrorGuestAgentStatusUnavailable", "VM Agent unable to communicate with Azure Backup"
)
EXTENSION_SNAPSHOT_FAILED_NO_NETWORK = JobError(
    "ExtensionSnapshotFailedNoNetwork",
    "Snapshot operation failed due to no network connectivity on the virtual machine",
)
EXTENSION_OPERATION_FAILED = JobError(
    "ExtensionOperationFailedForManagedDisks", "VMSnapshot extension operation failed"
)
VM_PROVISIONING_STATE_FAILED = JobError(
    "UserErrorVmProvisioningStateFailed", "The VM is in failed provisioning state"
)
RP_COLLECTION_LIMIT_REACHED = JobError(
    "UserErrorRpCollectionLimitReached", "The Restore Point collection max limit has reached."
)
BACKUP_OPERATION_IN_PROGRESS = JobError(
    "UserErrorBackupOperationInProgress",
    "Unable to initiate backup as another backup operation is currently in progress",
)
BACKUP_OPERATION_FAILED = JobError(
    "BackUpOperationFailed",
    "Backup failed with an internal error - Please retry the operation in a few minutes",
)

ALL_ERRORS: tuple[JobError, ...] = (
    GUEST_AGENT_SNAPSHOT_TASK_STATUS_ERROR,
    GUEST_AGENT_STATUS_UNAVAILABLE,
    EXTENSION_SNAPSHOT_FAILED_NO_NETWORK,
    EXTENSION_OPERATION_FAILED,
    VM_PROVISIONING_STATE_FAILED,
    RP_COLLECTION_LIMIT_REACHED,
    BACKUP_OPERATION_IN_PROGRESS,
    BACKUP_OPERATION_FAILED,
)
BY_CODE: dict[str, JobError] = {error.code: error for error in ALL_ERRORS}

# Extension status codes that Azure reports under their own portal code; every other
# extension failure is the generic ExtensionOperationFailedForManagedDisks.
_EXTENSION_CODE_MAP: dict[int, JobError] = {
    CODE_NO_NETWORK: EXTENSION_SNAPSHOT_FAILED_NO_NETWORK,
}


def for_extension_code(code: int | None) -> JobError:
    """The job error for an extension that ended in ``error`` with this status code."""
    if code is None:
        return EXTENSION_OPERATION_FAILED
    return _EXTENSION_CODE_MAP.get(code, EXTENSION_OPERATION_FAILED)
