"""The platform-side ids of each guest VM (container, deployment, role instance, VM id)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from lab.platform.roster import GuestEntry

_ID_NAMESPACE = uuid.UUID("6f1c8f3e-2b7a-4d0e-9a51-5a1ab0c0ffee")


@dataclass(frozen=True)
class GuestIdentity:
    """Platform-side ids of one VM, derived from (lab, name) so they survive a fabric
    restart: a changed ContainerId makes the agent treat the VM as moved."""

    name: str
    ip: str
    container_id: str
    deployment_id: str
    role_name: str
    instance_id: str
    config_name: str
    vm_id: str

    @classmethod
    def derive(cls, lab: str, guest: GuestEntry) -> GuestIdentity:
        def stable(kind: str) -> uuid.UUID:
            return uuid.uuid5(_ID_NAMESPACE, f"{lab}/{guest.name}/{kind}")

        deployment = stable("deployment").hex
        role = f"_{guest.name}"
        return cls(
            name=guest.name,
            ip=guest.ip,
            container_id=str(stable("container")),
            deployment_id=deployment,
            role_name=role,
            instance_id=f"{deployment}.{role}",
            config_name=f"{deployment}.0.{deployment}.0.{role}.1.xml",
            vm_id=str(stable("vm")),
        )
