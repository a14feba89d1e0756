"""Every Azure job error carries the exact code and message of FACTS.md §1."""

from __future__ import annotations

import pytest

from lab.extension import protocol
from lab.platform.backup import codes

EXPECTED = {
    "GuestAgentSnapshotTaskStatusError": (
        "Could not communicate with the VM agent for snapshot status - "
        "Snapshot VM sub-task timed out"
    ),
    "UserErrorGuestAgentStatusUnavailable": "VM Agent unable to communicate with Azure Backup",
    "ExtensionSnapshotFailedNoNetwork": (
        "Snapshot operation failed due to no network connectivity on the virtual machine"
    ),
    "ExtensionOperationFailedForManagedDisks": "VMSnapshot extension operation failed",
    "UserErrorVmProvisioningStateFailed": "The VM is in failed provisioning state",
    "UserErrorRpCollectionLimitReached": "The Restore Point collection max limit has reached.",
    "UserErrorBackupOperationInProgress": (
        "Unable to initiate backup as another backup operation is currently in progress"
    ),
    "BackUpOperationFailed": (
        "Backup failed with an internal error - Please retry the operation in a few minutes"
    ),
}


def test_table_holds_exactly_the_documented_codes_and_messages() -> None:
    assert {e.code: e.message for e in codes.ALL_ERRORS} == EXPECTED
    assert len(codes.ALL_ERRORS) == len(EXPECTED)  # no duplicates
    assert {e.code: e for e in codes.ALL_ERRORS} == codes.BY_CODE


def test_no_network_maps_to_its_own_portal_code() -> None:
    assert codes.for_extension_code(protocol.CODE_NO_NETWORK) is (
        codes.EXTENSION_SNAPSHOT_FAILED_NO_NETWORK
    )


@pytest.mark.parametrize(
    "code",
    [
        None,
        protocol.CODE_ERROR,
        protocol.CODE_INVALID_SETTINGS,
        protocol.CODE_SNAPSHOT_LIMIT,
        protocol.CODE_FREEZE_FAILED,
        protocol.CODE_PRESCRIPT_TIMEOUT,
        protocol.CODE_TOO_LATE,
        1009,  # the agent's own EnableProcessingFailed
    ],
)
def test_every_other_extension_failure_is_the_generic_one(code: int | None) -> None:
    assert codes.for_extension_code(code) is codes.EXTENSION_OPERATION_FAILED
