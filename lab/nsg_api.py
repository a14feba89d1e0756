"""A VM's network security group through the lab's Microsoft.Network, with the unmodified
``azure-mgmt-network``: what ``snaplab nsg`` and the blocked-egress fault do, the way a
script does it on Azure.

The VM's NSG is found as on Azure, by observation: the NIC whose ``virtualMachine`` is
the VM, then the NSG that NIC names. Rules are created and deleted as long-running
operations and waited for, so when a call returns the host firewall holds the change.
ARM's refusals (a bad rule, a taken priority) become :class:`~lab.errors.BadInput` with
Azure's code and message; anything else the twin answers is a
:class:`~lab.errors.PlatformError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import docker
from azure.core.exceptions import AzureError, HttpResponseError
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import SecurityRule, SecurityRulePropertiesFormat

from lab.azure_sdk import network_client
from lab.errors import BadInput, PlatformError, UnknownVm
from lab.provision import lab as labs

STORAGE_TAG = "Storage"  # Azure's service tag for its storage accounts
OPERATION_TIMEOUT = 60.0  # seconds to wait for a rule change

T = TypeVar("T")


@dataclass(frozen=True)
class VmNsg:
    """Where a VM's rules live: the client, the resource group, the NSG's name."""

    network: NetworkManagementClient
    resource_group: str
    vm: str
    nsg: str


def connect(client: docker.DockerClient, lab: str) -> tuple[NetworkManagementClient, str]:
    """A network client for ``lab``'s ARM twin, and the lab's resource group."""
    arm = labs.arm_endpoint(client, lab)
    return (
        network_client(arm.url, arm.token, arm.subscription_id, arm.ca_file),
        arm.resource_group,
    )


def find(network: NetworkManagementClient, resource_group: str, vm: str) -> VmNsg:
    """The NSG on ``vm``'s NIC; UnknownVm when no NIC belongs to ``vm``."""
    nics = call(lambda: list(network.network_interfaces.list(resource_group)))
    suffix = f"/virtualmachines/{vm.lower()}"
    for nic in nics:
        props = nic.properties
        owner = props.virtual_machine.id if props and props.virtual_machine else None
        if owner and owner.lower().endswith(suffix):
            group = props.network_security_group if props else None
            if group is None or not group.id:
                raise BadInput(f"VM {vm!r}: its NIC {nic.name} has no network security group")
            return VmNsg(network, resource_group, vm, group.id.rsplit("/", 1)[-1])
    owners = sorted(
        n.properties.virtual_machine.id.rsplit("/", 1)[-1]
        for n in nics
        if n.properties and n.properties.virtual_machine and n.properties.virtual_machine.id
    )
    raise UnknownVm(f"VM {vm!r}: no network interface belongs to it (VMs: {', '.join(owners)})")


def storage_rule(access: str, priority: int) -> SecurityRule:
    """An outbound rule for the VM's traffic to Azure Storage (the ``Storage`` tag)."""
    return SecurityRule(
        properties=SecurityRulePropertiesFormat(
            protocol="*",
            source_address_prefix="*",
            source_port_range="*",
            destination_address_prefix=STORAGE_TAG,
            destination_port_range="*",
            access=access,
            priority=priority,
            direction="Outbound",
        )
    )


def rules(where: VmNsg) -> list[SecurityRule]:
    """The NSG's own rules, lowest priority number first."""
    found = call(lambda: list(where.network.security_rules.list(where.resource_group, where.nsg)))
    return sorted(found, key=_priority)


def default_rules(where: VmNsg) -> list[SecurityRule]:
    return call(
        lambda: list(where.network.default_security_rules.list(where.resource_group, where.nsg))
    )


def put(where: VmNsg, name: str, rule: SecurityRule) -> SecurityRule:
    """Create or update rule ``name`` and wait until the host firewall holds it."""
    poller = call(
        lambda: where.network.security_rules.begin_create_or_update(
            where.resource_group, where.nsg, name, rule
        )
    )
    result: SecurityRule = call(lambda: poller.result(timeout=OPERATION_TIMEOUT))
    return result


def delete(where: VmNsg, name: str) -> SecurityRule:
    """Delete rule ``name`` (refused when the NSG has none) and wait for it."""
    wanted = name.lower()
    current = rules(where)
    found = next((r for r in current if (r.name or "").lower() == wanted), None)
    if found is None:
        known = ", ".join(r.name or "?" for r in current) or "none"
        raise BadInput(f"{where.vm}'s NSG {where.nsg} has no rule named {name!r} (it has: {known})")
    poller = call(
        lambda: where.network.security_rules.begin_delete(
            where.resource_group, where.nsg, found.name or name
        )
    )
    call(lambda: poller.result(timeout=OPERATION_TIMEOUT))
    return found


def describe(rule: SecurityRule) -> str:
    """One line, as the portal's list reads: priority, direction, access, what it matches."""
    props = rule.properties
    if props is None:
        return rule.name or "?"
    ports = destination_ports(rule)
    port = "" if ports == "*" else f" port {ports}"
    return (
        f"{rule.name} (priority {props.priority}, {word(props.direction)} "
        f"{word(props.access)} {word(props.protocol)} from {source(rule)} to "
        f"{destination(rule)}{port})"
    )


def word(value: object) -> str:
    """An SDK enum (``SecurityRuleAccess.DENY``) as Azure spells it (``Deny``)."""
    return str(getattr(value, "value", value))


def destination_ports(rule: SecurityRule) -> str:
    props = rule.properties
    if props is None:
        return "*"
    return ",".join(props.destination_port_ranges or [props.destination_port_range or "*"])


def source(rule: SecurityRule) -> str:
    props = rule.properties
    if props is None:
        return "*"
    return ",".join(props.source_address_prefixes or [props.source_address_prefix or "*"])


def destination(rule: SecurityRule) -> str:
    props = rule.properties
    if props is None:
        return "*"
    return ",".join(props.destination_address_prefixes or [props.destination_address_prefix or "*"])


def call(action: Callable[[], T]) -> T:
    """Run an SDK call; ARM's refusals as BadInput, other failures as PlatformError."""
    try:
        return action()
    except HttpResponseError as exc:
        code = exc.error.code if exc.error is not None else None
        message = exc.error.message if exc.error is not None else exc.message
        text = f"({code}) {message}" if code else str(message)
        if exc.status_code in (400, 404, 409):
            raise BadInput(text) from exc
        raise PlatformError(f"the lab's ARM twin: {text}") from exc
    except AzureError as exc:
        raise PlatformError(f"the lab's ARM twin did not answer: {exc}") from exc


def _priority(rule: SecurityRule) -> int:
    return rule.properties.priority or 0 if rule.properties else 0
