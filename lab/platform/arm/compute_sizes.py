"""Azure VM sizes, so a lab VM's ``vmSize`` says what the guest really gets.

A guest is a container held to a CPU quota and a memory limit (the provisioner sets both
and writes them into the roster). Azure names each such pair: a support engineer reading
``hardwareProfile.vmSize`` (or IMDS's ``compute.vmSize``) then reasons about CPU and
memory pressure with the numbers the guest actually has. The table holds real sizes, from
Microsoft's B-series (burstable) size pages, checked in this order, so a pair that two
sizes share (2 vCPUs, 8 GiB: ``Standard_B2ms`` and ``Standard_D2s_v3``) gets the first.
A guest whose limits match no size is refused when the lab starts (:func:`vm_size_for`
raises), rather than shown under a size it does not have.

Pure: no I/O. Runs in the twin's and the fabric's containers (stdlib only).
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.platform.roster import GuestEntry


@dataclass(frozen=True)
class VmSize:
    """One Azure VM size: its name, vCPUs and memory (MiB)."""

    name: str
    vcpus: int
    memory_mib: int


# Microsoft's "B-series" and "Bsv2/Basv2" size pages (vCPU, memory GiB).
SIZES: tuple[VmSize, ...] = (
    VmSize("Standard_B1ls", 1, 512),
    VmSize("Standard_B1s", 1, 1024),
    VmSize("Standard_B1ms", 1, 2048),
    VmSize("Standard_B2ats_v2", 2, 1024),
    VmSize("Standard_B2s", 2, 4096),
    VmSize("Standard_B2ms", 2, 8192),
    VmSize("Standard_B4ms", 4, 16384),
    VmSize("Standard_B8ms", 8, 32768),
)


class NoMatchingSize(ValueError):
    """The guest's CPU and memory limits match no Azure size the lab knows."""


def size_for(cpus: float, memory_mib: int) -> VmSize:
    """The first size with exactly these vCPUs and this memory; raises NoMatchingSize."""
    found = next(
        (s for s in SIZES if float(s.vcpus) == float(cpus) and s.memory_mib == memory_mib), None
    )
    if found is None:
        known = ", ".join(f"{s.name} ({s.vcpus} vCPU, {s.memory_mib} MiB)" for s in SIZES)
        raise NoMatchingSize(
            f"no Azure VM size has {cpus:g} vCPU and {memory_mib} MiB of memory (known: {known})"
        )
    return found


def vm_size_for(guest: GuestEntry) -> VmSize:
    """The Azure size of a roster guest, from the limits its container runs under."""
    return size_for(guest.cpus, guest.memory_mib)
