"""The storage seam: what a backup job needs from blob storage, as a protocol.

Jobs hand the extension SAS URLs, check that the snapshots it reports really exist,
and move them to the vault. Behind this protocol that is Azurite
(:mod:`.azure_storage`); unit tests use an in-memory fake.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


class StorageError(Exception):
    """Storage refused or failed an operation (wraps the SDK's errors)."""


@dataclass(frozen=True)
class Disk:
    """One VM disk: a page blob in the disk container."""

    name: str  # blob name
    url: str  # without SAS
    size_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "size_bytes": self.size_bytes}


class BackupStorage(Protocol):
    """Blob storage as the backup service uses it."""

    @property
    def account_url(self) -> str: ...

    def ready(self) -> bool:
        """True once every container and disk exists (see :mod:`.provisioner`)."""
        ...

    def disks(self, vm: str) -> list[Disk]: ...

    def disk_sas_url(self, disk: Disk, expiry: datetime) -> str:
        """A read+write+create SAS URL for the disk blob (what the extension snapshots)."""
        ...

    def status_blob_sas_url(self, vm: str, task_id: str, expiry: datetime) -> str:
        """A read+write+create SAS URL where the extension uploads its task status."""
        ...

    def snapshot_exists(self, disk: Disk, snapshot: str) -> bool: ...

    def snapshot_disk(self, disk: Disk) -> str:
        """Take a blob snapshot of the disk from the platform side (a stopped VM's
        offline backup); returns its snapshot timestamp. Raises :class:`StorageError`."""
        ...

    def transfer_to_vault(
        self, disk: Disk, snapshot: str, vault_blob: str, expiry: datetime
    ) -> None:
        """Copy a disk snapshot into the vault container; raises :class:`StorageError`."""
        ...
