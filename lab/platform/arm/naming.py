"""The names and resource ids of a lab's Azure resources, one place for every provider.

A VM's document links its NIC and disks by id, the NIC links the NSG, the vault's
protected item links the VM: each provider builds these ids here so the links resolve.
The names are the portal's defaults for a VM created with a new NIC and NSG
(``<vm>-nsg``), with the NIC and OS disk named as ``az vm create`` does
(``<vm>VMNic``, ``<vm>_OsDisk_1_<hash>``), and one vault per lab, as a backup
administrator would make for a resource group.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import uuid

from lab.platform.roster import Roster

COMPUTE = "Microsoft.Compute"
NETWORK = "Microsoft.Network"
RECOVERY_SERVICES = "Microsoft.RecoveryServices"
_TENANT_NAMESPACE = uuid.UUID("8c3e1f52-2b7d-5a61-9e0f-74656e616e74")


def tenant_id(lab: str) -> str:
    """The lab's Microsoft Entra tenant, one per lab and stable: the ``tid`` of the
    managed identity's tokens and the ``tenantId`` of the lab's subscription."""
    return str(uuid.uuid5(_TENANT_NAMESPACE, lab))


def group_id(roster: Roster) -> str:
    return f"/subscriptions/{roster.subscription_id}/resourceGroups/{roster.resource_group}"


def vm_resource_id(roster: Roster, vm: str) -> str:
    return f"{group_id(roster)}/providers/{COMPUTE}/virtualMachines/{vm}"


def nic_name(vm: str) -> str:
    return f"{vm}VMNic"


def nic_id(roster: Roster, vm: str) -> str:
    return f"{group_id(roster)}/providers/{NETWORK}/networkInterfaces/{nic_name(vm)}"


def nsg_name(vm: str) -> str:
    return f"{vm}-nsg"


def nsg_id(roster: Roster, vm: str) -> str:
    return f"{group_id(roster)}/providers/{NETWORK}/networkSecurityGroups/{nsg_name(vm)}"


def vnet_name(roster: Roster) -> str:
    return f"{roster.lab}-vnet"


def subnet_id(roster: Roster) -> str:
    return (
        f"{group_id(roster)}/providers/{NETWORK}/virtualNetworks/{vnet_name(roster)}"
        "/subnets/default"
    )


def os_disk_name(roster: Roster, vm: str) -> str:
    """``<vm>_OsDisk_1_<32 hex>`` as Azure names an OS disk; the hex is stable per VM."""
    digest = hashlib.sha256(f"{roster.lab}/{vm}/osdisk".encode()).hexdigest()[:32]
    return f"{vm}_OsDisk_1_{digest}"


def data_disk_name(vm: str, lun: int) -> str:
    return f"{vm}_DataDisk_{lun}"


def disk_id(roster: Roster, name: str) -> str:
    return f"{group_id(roster)}/providers/{COMPUTE}/disks/{name}"


def vault_name(roster: Roster) -> str:
    return f"{roster.lab}-vault"


def vault_id(roster: Roster) -> str:
    return f"{group_id(roster)}/providers/{RECOVERY_SERVICES}/vaults/{vault_name(roster)}"


# Azure Backup's names for a VM in a vault: the fabric is always "Azure"; the container
# and the protected item carry the VM's resource group and name, lower case, as Azure
# writes them (``IaasVMContainer;iaasvmcontainerv2;<rg>;<vm>``, ``VM;iaasvmcontainerv2;...``).
BACKUP_FABRIC = "Azure"


def backup_container_short_name(roster: Roster, vm: str) -> str:
    """``iaasvmcontainerv2;<rg>;<vm>``: the protected item's ``containerName`` property."""
    return f"iaasvmcontainerv2;{roster.resource_group.lower()};{vm.lower()}"


def backup_container_name(roster: Roster, vm: str) -> str:
    return f"IaasVMContainer;{backup_container_short_name(roster, vm)}"


def protected_item_name(roster: Roster, vm: str) -> str:
    return f"VM;{backup_container_short_name(roster, vm)}"


def protected_item_id(roster: Roster, vm: str) -> str:
    return (
        f"{vault_id(roster)}/backupFabrics/{BACKUP_FABRIC}/protectionContainers/"
        f"{backup_container_name(roster, vm)}/protectedItems/{protected_item_name(roster, vm)}"
    )


def backup_policy_id(roster: Roster, policy: str) -> str:
    return f"{vault_id(roster)}/backupPolicies/{policy}"


def backup_job_id(roster: Roster, job: str) -> str:
    return f"{vault_id(roster)}/backupJobs/{job}"
