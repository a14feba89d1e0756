"""Where the guest keeps the files the handler reads outside its own directory.

In a guest everything sits under ``/``; tests point ``VMSNAPSHOT_ROOT`` at a temporary
directory instead. The real extension only trusts root-owned script configuration;
``VMSNAPSHOT_TRUSTED_UID`` lets a test run as its own user.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT_ENV = "VMSNAPSHOT_ROOT"
TRUSTED_UID_ENV = "VMSNAPSHOT_TRUSTED_UID"


@dataclass(frozen=True)
class GuestPaths:
    root: Path = Path("/")
    trusted_uid: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> GuestPaths:
        root = Path(environ.get(ROOT_ENV) or "/")
        return cls(root=root, trusted_uid=int(environ.get(TRUSTED_UID_ENV) or 0))

    def resolve(self, guest_path: str | Path) -> Path:
        """A guest path (as written in a config file) under this root."""
        return self.root / str(guest_path).lstrip("/")

    @property
    def etc_azure(self) -> Path:
        return self.resolve("/etc/azure")

    @property
    def vmbackup_conf(self) -> Path:
        return self.etc_azure / "vmbackup.conf"

    @property
    def plugin_host_conf(self) -> Path:
        return self.etc_azure / "VMSnapshotPluginHost.conf"

    @property
    def waagent_conf(self) -> Path:
        return self.resolve("/etc/waagent.conf")

    @property
    def waagent_lib(self) -> Path:
        return self.resolve("/var/lib/waagent")
