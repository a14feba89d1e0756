"""Microsoft.Compute's JSON documents: VM and extension resources, instance views.

The shapes are what ``azure-mgmt-compute`` reads from real ARM, so checks and runbooks
see a lab VM the way they would see an Azure one. The texts Azure shows for the guest
agent are constants here, so tests can match them word for word.

This module is pure: no clocks, no state, no I/O. Callers pass in everything.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from lab.platform.arm import naming
from lab.platform.arm.compute_profiles import (
    hardware_profile,
    network_profile,
    os_profile,
    storage_profile,
)
from lab.platform.arm.conventions import JsonObject
from lab.platform.arm.extensions import arm_name, requested_version, split_handler
from lab.platform.arm.fabric import ExtensionReport, FabricVm
from lab.platform.arm.power import PowerState
from lab.platform.roster import GuestEntry, Roster

VM_TYPE = "Microsoft.Compute/virtualMachines"
EXTENSION_TYPE = f"{VM_TYPE}/extensions"

# What Azure shows for the guest agent. The "not updated" text is the platform's own
# wording for a stale status blob; the "not found" text is what it shows for a VM whose
# agent never uploaded one (seen on real VMs, see WALinuxAgent issue #652).
AGENT_READY_MESSAGE = "Guest Agent is running"
AGENT_STALE_MESSAGE = "VM status blob is found but not updated for 10 minutes after last heartbeat."
AGENT_NEVER_REPORTED_MESSAGE = "VM status blob not found."
AGENT_UNKNOWN_VERSION = "Unknown"

_VM_ID_NAMESPACE = uuid.UUID("6f1c7c2e-4a8e-5d4f-9a57-736e61706c61")  # fixed: vmIds stay stable


def vm_id(lab: str, name: str) -> str:
    """The VM's ``vmId``: stable across twin restarts, unique per lab and VM."""
    return str(uuid.uuid5(_VM_ID_NAMESPACE, f"{lab}/{name}"))


def vm_resource_id(roster: Roster, name: str) -> str:
    return naming.vm_resource_id(roster, name)


def vm_document(
    roster: Roster, guest: GuestEntry, busy: bool, instance_view: JsonObject | None = None
) -> JsonObject:
    """The VM resource as ``GET .../virtualMachines/{vm}`` returns it: its profiles say
    what is true of the guest (:mod:`lab.platform.arm.compute_profiles`)."""
    properties: JsonObject = {
        "vmId": vm_id(roster.lab, guest.name),
        "hardwareProfile": hardware_profile(guest),
        "storageProfile": storage_profile(roster, guest),
        "osProfile": os_profile(guest),
        "networkProfile": network_profile(roster, guest),
        "provisioningState": "Updating" if busy else "Succeeded",
    }
    if instance_view is not None:
        properties["instanceView"] = instance_view
    return {
        "id": vm_resource_id(roster, guest.name),
        "name": guest.name,
        "type": VM_TYPE,
        "location": roster.location,
        "properties": properties,
    }


def instance_view_document(
    report: FabricVm | None, power: PowerState, busy: bool, now: datetime
) -> JsonObject:
    """The instance view: agent and extension statuses as last reported, and power state."""
    view: JsonObject = {}
    if report is not None and report.os is not None:
        view.update(
            _without_none(
                computerName=report.os.computer_name,
                osName=report.os.name,
                osVersion=report.os.version,
            )
        )
    view["vmAgent"] = _agent_view(report, now)
    view["extensions"] = [_extension_view(e) for e in report.extensions] if report else []
    provisioning = _status("ProvisioningState/succeeded", "Info", "Provisioning succeeded")
    if busy:
        provisioning = _status("ProvisioningState/updating", "Info", "Updating")
    view["statuses"] = [provisioning, _status(f"PowerState/{power.value}", "Info", power.display)]
    return view


def _agent_view(report: FabricVm | None, now: datetime) -> JsonObject:
    """``vmAgent`` as Azure shows it: the agent's own status while fresh, else "Not Ready".

    The fabric decides freshness (it knows when the last status arrived); a report it
    calls Not Ready is shown with the platform's stale wording and an unknown version,
    because that is all Azure itself can say about an agent that stopped reporting.
    """
    agent = report.agent if report else None
    if agent is None or not agent.ready:
        message = AGENT_NEVER_REPORTED_MESSAGE
        if agent is not None and agent.last_report is not None:
            message = AGENT_STALE_MESSAGE
        not_ready = _status("ProvisioningState/Unavailable", "Warning", "Not Ready", message)
        not_ready["time"] = now.isoformat()
        return {"vmAgentVersion": AGENT_UNKNOWN_VERSION, "statuses": [not_ready]}
    ready = _status(
        "ProvisioningState/succeeded", "Info", "Ready", agent.message or AGENT_READY_MESSAGE
    )
    if agent.last_report is not None:
        ready["time"] = agent.last_report
    handlers = [_handler_view(e) for e in report.extensions] if report else []
    return {
        "vmAgentVersion": agent.version or AGENT_UNKNOWN_VERSION,
        "statuses": [ready],
        "extensionHandlers": handlers,
    }


def _handler_view(ext: ExtensionReport) -> JsonObject:
    if ext.handler_status == "Ready":
        status = _status("ProvisioningState/succeeded", "Info", "Ready")
    else:
        status = _status(
            f"ProvisioningState/failed/{ext.code or 0}", "Error", "Not Ready", ext.message
        )
    return _without_none(type=ext.name, typeHandlerVersion=ext.version, status=status)


# The extension's own status file (transitioning|warning|error|success) mapped to the
# (code, level, displayStatus) of the instance view's extension status.
_EXTENSION_STATUS = {
    "success": ("ProvisioningState/succeeded", "Info", "Provisioning succeeded"),
    "warning": ("ProvisioningState/succeeded", "Warning", "Provisioning succeeded"),
    "transitioning": ("ProvisioningState/transitioning", "Info", "Transitioning"),
}


def _extension_view(ext: ExtensionReport) -> JsonObject:
    """``VirtualMachineExtensionInstanceView``: the resource name, the full handler name
    as ``type`` (as Azure shows it) and the version the agent runs."""
    if ext.status == "error":
        code, level, display = (
            f"ProvisioningState/failed/{ext.code or 0}",
            "Error",
            "Provisioning failed",
        )
    else:
        code, level, display = _EXTENSION_STATUS.get(
            ext.status or "transitioning", _EXTENSION_STATUS["transitioning"]
        )
    return _without_none(
        name=arm_name(ext.name),
        type=ext.name,
        typeHandlerVersion=ext.version,
        statuses=[_status(code, level, display, ext.message)],
    )


def extension_resource_id(roster: Roster, vm: str, name: str) -> str:
    return f"{vm_resource_id(roster, vm)}/extensions/{name}"


# The resource's provisioning state from the extension's last reported status.
_EXTENSION_PROVISIONING = {"success": "Succeeded", "warning": "Succeeded", "error": "Failed"}


def extension_document(
    roster: Roster,
    vm: str,
    ext: ExtensionReport,
    *,
    expand: bool,
    name: str | None = None,
    provisioning_state: str | None = None,
    settings: Mapping[str, object] | None = None,
) -> JsonObject:
    """A ``Microsoft.Compute/virtualMachines/extensions`` resource.

    ``name`` is its resource name (by default its type, as Azure Backup names its
    extension); ``autoUpgradeMinorVersion`` is true because that is how Azure Backup and
    the portal install extensions; ``provisioningState`` follows what the extension last
    reported (``Updating`` while it runs) unless an operation on it says otherwise
    (``Creating``, ``Updating``, ``Deleting``); ``settings`` are the public settings the
    goal state holds (protected settings are never returned, as in Azure).
    """
    publisher, kind = split_handler(ext.name)
    state = provisioning_state or _EXTENSION_PROVISIONING.get(ext.status or "", "Updating")
    properties: JsonObject = _without_none(
        publisher=publisher,
        type=kind,
        typeHandlerVersion=requested_version(ext.version),
        autoUpgradeMinorVersion=True,
        settings=dict(settings) if settings else None,
        provisioningState=state,
    )
    if expand:
        properties["instanceView"] = _extension_view(ext)
    name = name or arm_name(ext.name)
    return {
        "id": extension_resource_id(roster, vm, name),
        "name": name,
        "type": EXTENSION_TYPE,
        "location": roster.location,
        "properties": properties,
    }


def _status(code: str, level: str, display: str, message: str | None = None) -> JsonObject:
    return _without_none(code=code, level=level, displayStatus=display, message=message)


def _without_none(**fields: object) -> JsonObject:
    return {k: v for k, v in fields.items() if v is not None}
