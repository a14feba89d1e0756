"""Names and content of the lab's disks and backup blobs, in one place.

Each guest has one OS disk, a page blob of Azure's default Linux OS disk size (30 GiB;
page blobs are sparse, so only written pages cost anything). Its first few MiB hold a
recognisable header and a deterministic pattern, so a snapshot or a vault copy can be
checked byte for byte, and a disk that already has them is left alone on restart.
"""

from __future__ import annotations

import hashlib

DISK_CONTAINER = "vhds"
VAULT_CONTAINER = "vault"
STATUS_CONTAINER = "vmstatus"
CONTAINERS = (DISK_CONTAINER, VAULT_CONTAINER, STATUS_CONTAINER)

GIB = 1024**3
OS_DISK_SIZE = 30 * GIB
SECTOR = 512
# What we write at the start of each disk; a page write is at most 4 MiB.
CONTENT_SIZE = 4 * 1024 * 1024
MAX_PAGE_WRITE = 4 * 1024 * 1024
_PATTERN_BLOCK = 4096

HEADER_MAGIC = b"SNAPLAB-OSDISK/1"


def os_disk_name(vm: str) -> str:
    return f"{vm}-osdisk.vhd"


def vault_blob_name(vm: str, job_id: str, disk_name: str) -> str:
    return f"{vm}/{job_id}/{disk_name}"


def status_blob_name(vm: str, task_id: str) -> str:
    return f"{vm}/{task_id}.status"


def disk_header(vm: str) -> bytes:
    """The first sector: magic, VM name and nominal size, NUL padded."""
    text = HEADER_MAGIC + f" vm={vm} size={OS_DISK_SIZE}\n".encode()
    if len(text) > SECTOR:
        raise ValueError(f"VM name too long for a disk header: {vm!r}")
    return text.ljust(SECTOR, b"\x00")


def disk_content(vm: str) -> bytes:
    """Header, then a pattern derived from the VM name (so two disks never match)."""
    blocks = []
    for index in range((CONTENT_SIZE - SECTOR) // _PATTERN_BLOCK + 1):
        digest = hashlib.sha256(f"{vm}:{index}".encode()).digest()
        blocks.append(digest * (_PATTERN_BLOCK // len(digest)))
    return (disk_header(vm) + b"".join(blocks))[:CONTENT_SIZE]
