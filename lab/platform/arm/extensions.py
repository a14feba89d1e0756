"""VM extensions as ARM knows them: resource names, publisher/type, and deletion.

The guest agent knows an extension only by its handler, ``<publisher>.<type>``
(``Microsoft.Azure.RecoveryServices.VMSnapshotLinux``); ARM knows it as a child resource
of the VM whose name the creator chose and whose properties split the handler into
``publisher`` and ``type``. Azure Backup names its resource after the type
(``VMSnapshotLinux``), as the portal and CLI do by default, so the lab derives every
resource name that way and a runbook's ``get(rg, vm, "VMSnapshotLinux")`` finds it.

Which extensions a VM has is observed, not configured: the ones its agent reports. A
delete puts the handler in state ``uninstall`` through the fabric and succeeds once the
agent stops reporting it, as CRP waits for the agent; an agent that never gets there
fails the operation with Azure's extension timeout.

Runs inside the twin's container on Debian's Python: stdlib only, and nothing from
``lab`` outside :mod:`lab.platform`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from lab.platform.arm.fabric import ExtensionReport, FabricClient, FabricError, FabricVm
from lab.platform.arm.operations import OperationError

# CRP's 90 minutes for an extension operation come from the one table of Azure durations;
# re-exported here for the twin, which waits for it.
from lab.platform.timescale import EXTENSION_OPERATION_TIMEOUT as EXTENSION_OPERATION_TIMEOUT

# The twin logs under one name, whichever of its modules speaks.
_log = logging.getLogger("lab.platform.arm")


def split_handler(handler: str) -> tuple[str, str]:
    """(publisher, type) of a handler name: the type is the part after the last dot."""
    publisher, _, kind = handler.rpartition(".")
    return publisher, kind


def arm_name(handler: str) -> str:
    """The extension's resource name in the lab: its type (``VMSnapshotLinux``)."""
    return split_handler(handler)[1]


def requested_version(version: str | None) -> str | None:
    """``typeHandlerVersion`` as a resource states it: major.minor (``1.0``), while the
    instance view shows the full version the agent runs (``1.0.91.0``)."""
    if not version:
        return None
    return ".".join(version.split(".")[:2])


def reported_extensions(report: FabricVm | None) -> tuple[ExtensionReport, ...]:
    return report.extensions if report is not None else ()


def find_extension(report: FabricVm | None, name: str) -> ExtensionReport | None:
    """The reported extension whose resource name is ``name`` (case-insensitive, as ARM)."""
    wanted = name.lower()
    return next(
        (e for e in reported_extensions(report) if arm_name(e.name).lower() == wanted), None
    )


@dataclass
class ExtensionDeletion:
    """The work of one extension DELETE, run on the operation's thread.

    Raises :class:`OperationError` when the fabric refuses or the agent does not remove
    the extension within ``timeout_seconds``; returns when the agent no longer reports it.
    """

    fabric: FabricClient
    vm: str
    name: str
    handler: str
    timeout_seconds: float
    poll_seconds: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic

    def __call__(self) -> None:
        try:
            incarnation = self.fabric.uninstall_extension(self.vm, self.handler)
        except FabricError as exc:
            raise OperationError(f"The lab fabric did not answer: {exc}", "BadGateway") from exc
        if incarnation is None:
            raise OperationError(
                f"Extension '{self.name}' ({self.handler}) is not in the goal state of VM "
                f"'{self.vm}', so the VM agent cannot be asked to remove it.",
                "ResourceNotFound",
            )
        _log.info(
            "uninstall of %s on %s published (incarnation %s)", self.handler, self.vm, incarnation
        )
        deadline = self.monotonic() + self.timeout_seconds
        while True:
            if self._gone():
                return
            if self.monotonic() >= deadline:
                raise OperationError(
                    f"Provisioning of VM extension '{self.name}' has timed out. Extension "
                    "deletion may be taking too long, or extension status could not be "
                    "obtained.",
                    "VMExtensionProvisioningTimeout",
                )
            self.sleep(self.poll_seconds)

    def _gone(self) -> bool:
        try:
            report = self.fabric.vm(self.vm)
        except FabricError as exc:  # a fabric hiccup is no verdict; ask again
            _log.warning("cannot read %s while deleting %s: %s", self.vm, self.name, exc)
            return False
        wanted = self.handler.lower()
        return all(e.name.lower() != wanted for e in reported_extensions(report))
