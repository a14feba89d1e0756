"""The profiles of a lab VM's ARM document: hardware, storage, OS and network.

Each says what is true of the guest, in the shapes ``azure-mgmt-compute`` reads, so a
user's script that follows a link (``vm.network_profile.network_interfaces[0].id``,
``vm.storage_profile.os_disk.managed_disk.id``) gets an id that the lab's other providers
answer (:mod:`lab.platform.arm.naming`):

- ``hardwareProfile.vmSize``: the Azure size with the guest's real vCPUs and memory
  (:mod:`lab.platform.arm.compute_sizes`);
- ``storageProfile``: the Debian marketplace image the guest's release matches (12 or
  13, as IMDS says), one managed OS disk of the size the platform gave it (30 GiB, the
  page blob the backup snapshots), no data disks (a lab VM has none);
- ``osProfile``: the host name, ``azureuser`` with SSH keys only, the agent provisioned
  (``provisionVMAgent``) and extensions allowed, as ``az vm create`` makes a Linux VM;
- ``networkProfile``: its one NIC, primary.

Pure: no I/O. Runs in the twin's container (stdlib only).
"""

from __future__ import annotations

from lab.platform.arm import naming
from lab.platform.arm.compute_sizes import vm_size_for
from lab.platform.arm.conventions import JsonObject
from lab.platform.backup.disks import GIB, OS_DISK_SIZE
from lab.platform.documents import guest_os_release
from lab.platform.roster import GuestEntry, Roster

ADMIN_USERNAME = "azureuser"
# The OS disk's SKU: what ``az vm create`` picks for a size that supports premium storage
# (every size of compute_sizes does).
OS_DISK_STORAGE_ACCOUNT_TYPE = "Premium_LRS"
IMAGE_PUBLISHER = "Debian"


def hardware_profile(guest: GuestEntry) -> JsonObject:
    return {"vmSize": vm_size_for(guest).name}


def image_reference(guest: GuestEntry) -> JsonObject:
    """Debian's marketplace image of the guest's release (``debian-12``/``12-gen2``).

    The lab builds its guests from Debian's archive rather than from a dated image
    build, so the reference asks for ``latest`` and carries no ``exactVersion``."""
    release = guest_os_release(guest.agent_version)
    return {
        "publisher": IMAGE_PUBLISHER,
        "offer": f"debian-{release}",
        "sku": f"{release}-gen2",
        "version": "latest",
    }


def storage_profile(roster: Roster, guest: GuestEntry) -> JsonObject:
    disk = naming.os_disk_name(roster, guest.name)
    return {
        "imageReference": image_reference(guest),
        "osDisk": {
            "osType": "Linux",
            "name": disk,
            "createOption": "FromImage",
            "caching": "ReadWrite",
            "managedDisk": {
                "storageAccountType": OS_DISK_STORAGE_ACCOUNT_TYPE,
                "id": naming.disk_id(roster, disk),
            },
            "deleteOption": "Delete",
            "diskSizeGB": OS_DISK_SIZE // GIB,
        },
        "dataDisks": [],
        "diskControllerType": "SCSI",
    }


def os_profile(guest: GuestEntry) -> JsonObject:
    return {
        "computerName": guest.name,
        "adminUsername": ADMIN_USERNAME,
        "linuxConfiguration": {
            "disablePasswordAuthentication": True,
            "provisionVMAgent": True,
            "patchSettings": {"patchMode": "ImageDefault", "assessmentMode": "ImageDefault"},
            "enableVMAgentPlatformUpdates": False,
        },
        "secrets": [],
        "allowExtensionOperations": True,
        "requireGuestProvisionSignal": True,
    }


def network_profile(roster: Roster, guest: GuestEntry) -> JsonObject:
    return {
        "networkInterfaces": [
            {
                "id": naming.nic_id(roster, guest.name),
                "properties": {"primary": True, "deleteOption": "Detach"},
            }
        ]
    }
