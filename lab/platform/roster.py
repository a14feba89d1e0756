"""The lab roster: which guests exist, their addresses, and where the fabric listens.

The provisioner writes it (JSON) into the fabric container at ``ROSTER_PATH``; every
platform service reads it to tell guests apart by source address.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lab.platform.timescale import DEFAULT_TIME_SCALE

ROSTER_PATH = Path("/etc/snaplab/roster.json")

WIRESERVER_PORT = 80
HOSTPLUGIN_PORT = 32526
CONTROL_PORT = 8080
IMDS_ADDRESS = "169.254.169.254"


@dataclass(frozen=True)
class GuestEntry:
    """One guest VM as the platform knows it."""

    name: str
    ip: str
    mac: str
    agent_version: str
    container: str
    # The limits the guest's container runs under (the provisioner sets both): what the
    # VM's Azure size is named after (lab.platform.arm.compute_sizes). The defaults are
    # the lab's guests before the roster carried them.
    cpus: float = 1.0
    memory_mib: int = 1024


@dataclass(frozen=True)
class Roster:
    """Everything the fabric needs to know about its lab."""

    lab: str
    subnet: str
    fabric_ip: str
    storage_ip: str
    guests: tuple[GuestEntry, ...] = field(default_factory=tuple)
    subscription_id: str = "00000000-0000-0000-0000-000000000000"
    resource_group: str = "snaplab"
    location: str = "snaplab-local"
    # The lab's own Azure-clock factor: the fabric runs at it (SNAPLAB_TIME_SCALE in its
    # environment) and host-side code that waits on the lab's clock reads it from here,
    # so labs at different scales run side by side in one process.
    time_scale: float = DEFAULT_TIME_SCALE

    def guest_by_ip(self, ip: str) -> GuestEntry | None:
        return next((g for g in self.guests if g.ip == ip), None)

    def guest_by_name(self, name: str) -> GuestEntry | None:
        return next((g for g in self.guests if g.name == name), None)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Roster:
        raw = json.loads(text)
        guests = tuple(GuestEntry(**g) for g in raw.pop("guests", []))
        return cls(guests=guests, **raw)

    @classmethod
    def load(cls, path: Path = ROSTER_PATH) -> Roster:
        return cls.from_json(path.read_text())
