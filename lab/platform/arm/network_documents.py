"""Microsoft.Network's JSON documents for a lab: network interfaces, network security
groups and their rules, in the shapes ``azure-mgmt-network`` and ``az network`` read.

Each VM has one NIC (``<vm>VMNic``, with one primary IP configuration ``ipconfig<vm>``
holding the VM's private address from the roster, in the lab VNet's ``default`` subnet)
and one NSG (``<vm>-nsg``) attached to that NIC, as ``az vm create`` and the portal make
them. The ids come from :mod:`lab.platform.arm.naming`, so the VM's ``networkProfile``,
the NIC and the NSG link to each other.

Pure: no I/O.
"""

from __future__ import annotations

import uuid

from lab.platform.arm import naming
from lab.platform.arm.conventions import JsonObject
from lab.platform.arm.network_rules import DEFAULT_RULES, SecurityRule
from lab.platform.arm.network_store import SUCCEEDED, StoredRule
from lab.platform.roster import GuestEntry, Roster

NIC_TYPE = "Microsoft.Network/networkInterfaces"
NSG_TYPE = "Microsoft.Network/networkSecurityGroups"
RULE_TYPE = "Microsoft.Network/networkSecurityGroups/securityRules"
DEFAULT_RULE_TYPE = "Microsoft.Network/networkSecurityGroups/defaultSecurityRules"


def _guid(roster: Roster, what: str) -> str:
    """A stable resourceGuid for one of the lab's resources."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"snaplab:{roster.lab}:{what}"))


def _etag(roster: Roster, what: str) -> str:
    return f'W/"{_guid(roster, "etag:" + what)}"'


def azure_mac(mac: str) -> str:
    """A MAC address as Azure writes it (``00-0D-3A-12-34-56``)."""
    return mac.replace(":", "-").upper()


def rule_id(roster: Roster, vm: str, name: str, kind: str = "securityRules") -> str:
    return f"{naming.nsg_id(roster, vm)}/{kind}/{name}"


def rule_document(roster: Roster, vm: str, stored: StoredRule) -> JsonObject:
    return {
        "name": stored.rule.name,
        "id": rule_id(roster, vm, stored.rule.name),
        "etag": stored.etag,
        "type": RULE_TYPE,
        "properties": {"provisioningState": stored.state, **stored.rule.properties()},
    }


def default_rule_document(roster: Roster, vm: str, rule: SecurityRule) -> JsonObject:
    return {
        "name": rule.name,
        "id": rule_id(roster, vm, rule.name, "defaultSecurityRules"),
        "etag": _etag(roster, f"{vm}/default/{rule.name}"),
        "type": DEFAULT_RULE_TYPE,
        "properties": {"provisioningState": SUCCEEDED, **rule.properties()},
    }


def nsg_document(roster: Roster, vm: str, rules: list[StoredRule]) -> JsonObject:
    updating = any(r.state != SUCCEEDED for r in rules)
    return {
        "name": naming.nsg_name(vm),
        "id": naming.nsg_id(roster, vm),
        "etag": _etag(roster, f"{vm}/nsg/{','.join(r.etag for r in rules)}"),
        "type": NSG_TYPE,
        "location": roster.location,
        "properties": {
            "provisioningState": "Updating" if updating else SUCCEEDED,
            "resourceGuid": _guid(roster, f"{vm}/nsg"),
            "securityRules": [rule_document(roster, vm, r) for r in rules],
            "defaultSecurityRules": [default_rule_document(roster, vm, r) for r in DEFAULT_RULES],
            "networkInterfaces": [{"id": naming.nic_id(roster, vm)}],
        },
    }


def nic_document(roster: Roster, vm: GuestEntry) -> JsonObject:
    nic_id = naming.nic_id(roster, vm.name)
    config = f"ipconfig{vm.name}"
    return {
        "name": naming.nic_name(vm.name),
        "id": nic_id,
        "etag": _etag(roster, f"{vm.name}/nic"),
        "type": NIC_TYPE,
        "location": roster.location,
        "properties": {
            "provisioningState": SUCCEEDED,
            "resourceGuid": _guid(roster, f"{vm.name}/nic"),
            "ipConfigurations": [
                {
                    "name": config,
                    "id": f"{nic_id}/ipConfigurations/{config}",
                    "etag": _etag(roster, f"{vm.name}/nic"),
                    "type": f"{NIC_TYPE}/ipConfigurations",
                    "properties": {
                        "provisioningState": SUCCEEDED,
                        "privateIPAddress": vm.ip,
                        "privateIPAllocationMethod": "Dynamic",
                        "privateIPAddressVersion": "IPv4",
                        "subnet": {"id": naming.subnet_id(roster)},
                        "primary": True,
                    },
                }
            ],
            "dnsSettings": {"dnsServers": [], "appliedDnsServers": []},
            "macAddress": azure_mac(vm.mac) if vm.mac else None,
            "primary": True,
            "enableAcceleratedNetworking": False,
            "enableIPForwarding": False,
            "networkSecurityGroup": {"id": naming.nsg_id(roster, vm.name)},
            "virtualMachine": {"id": naming.vm_resource_id(roster, vm.name)},
            "nicType": "Standard",
        },
    }
