"""The checks Azure Backup runs before it starts a job, in Azure's order.

Order matters because a VM can fail several at once and the job shows only the first:
a second backup of a busy VM reports the operation in progress even if its agent is
also down. The agent only matters while the platform runs the VM: a VM the platform
stopped is backed up from its disks alone (crash consistent), so its agent is not
asked. Pure: the service gathers the facts, this decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.platform.backup.codes import (
    BACKUP_OPERATION_IN_PROGRESS,
    GUEST_AGENT_STATUS_UNAVAILABLE,
    RP_COLLECTION_LIMIT_REACHED,
    JobError,
)

# Azure keeps at most 18 instant restore points per VM; the 19th backup is refused.
RESTORE_POINT_LIMIT = 18


@dataclass(frozen=True)
class PrecheckFacts:
    """What the platform knows about the VM when a backup is requested."""

    backup_in_progress: bool
    restore_points: int
    agent_ready: bool
    vm_running: bool = True


def precheck(facts: PrecheckFacts) -> JobError | None:
    """The error the new job fails with before it starts, or None if it may run."""
    if facts.backup_in_progress:
        return BACKUP_OPERATION_IN_PROGRESS
    if facts.restore_points >= RESTORE_POINT_LIMIT:
        return RP_COLLECTION_LIMIT_REACHED
    if facts.vm_running and not facts.agent_ready:
        return GUEST_AGENT_STATUS_UNAVAILABLE
    return None
