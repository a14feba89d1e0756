"""What a completed backup leaves behind: a restore point per job, per VM.

Azure keeps instant restore points (the disk snapshots) and vault copies; a restore
point here names both for every disk, so a check can find the snapshot in storage and
the vault blob it was copied to. Its consistency is Azure's: application consistent
when the pre/post scripts ran, file-system consistent for a normal snapshot through the
extension, crash consistent for a VM the host snapshotted while it was stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lab.platform.backup.job import iso_time

APPLICATION_CONSISTENT = "ApplicationConsistent"
FILE_SYSTEM_CONSISTENT = "FileSystemConsistent"
CRASH_CONSISTENT = "CrashConsistent"


@dataclass(frozen=True)
class RestorePointDisk:
    name: str  # the disk's blob name, e.g. "vm1-osdisk.vhd"
    snapshot: str  # the snapshot timestamp storage returned (x-ms-snapshot)
    vault_blob: str  # the blob name in the vault container

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "snapshot": self.snapshot, "vault_blob": self.vault_blob}


@dataclass(frozen=True)
class RestorePoint:
    id: str
    vm: str
    job_id: str
    created_at: datetime
    disks: tuple[RestorePointDisk, ...]
    consistency: str = FILE_SYSTEM_CONSISTENT

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "vm": self.vm,
            "job_id": self.job_id,
            "created_at": iso_time(self.created_at),
            "consistency": self.consistency,
            "disks": [d.to_json() for d in self.disks],
        }

    def to_record(self) -> dict[str, Any]:
        record = self.to_json()
        record["created_at"] = self.created_at.isoformat()
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RestorePoint:
        return cls(
            id=str(record["id"]),
            vm=str(record["vm"]),
            job_id=str(record["job_id"]),
            created_at=datetime.fromisoformat(str(record["created_at"])),
            disks=tuple(
                RestorePointDisk(str(d["name"]), str(d["snapshot"]), str(d["vault_blob"]))
                for d in record["disks"]
            ),
            consistency=str(record.get("consistency") or FILE_SYSTEM_CONSISTENT),
        )
