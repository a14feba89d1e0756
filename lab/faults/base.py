"""What a fault is: a real change to a guest or its network, applied from outside.

A fault never asks the guest's agent to break itself, and never writes a marker that
a check could read: it changes what a real VM would have changed (a stopped service,
a config line, a firewall rule, a corrupt file, a busy CPU), using ``docker exec`` into
the guest (as root at its console would) or the host's firewall (as the platform's
NSG would). Checks then find the cause only from what they observe.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from typing import Any, Protocol

import docker
from docker.models.containers import Container

from lab.errors import SnaplabError
from lab.platform.roster import GuestEntry, Roster
from lab.provision import engines


class FaultError(SnaplabError):
    """A fault could not be applied (the guest refused the change)."""


@dataclass(frozen=True)
class FaultTarget:
    """One VM of a running lab, and the ways a fault may reach it."""

    client: docker.DockerClient
    roster: Roster
    vm: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def guest(self) -> GuestEntry:
        entry = self.roster.guest_by_name(self.vm)
        if entry is None:
            raise FaultError(f"lab {self.roster.lab!r} has no VM {self.vm!r}")
        return entry

    @property
    def container(self) -> Container:
        return self.client.containers.get(self.guest.container)

    def run(self, script: str, *, timeout: float = 120.0) -> str:
        """Run a shell script in the guest as root (its console, not its agent)."""
        argv = [
            *engines.docker_cli(self.client),
            "exec",
            self.guest.container,
            "bash",
            "-c",
            script,
        ]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise FaultError(f"{self.vm}: fault step timed out: {script[:80]}") from exc
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise FaultError(f"{self.vm}: fault step failed ({done.returncode}): {tail[0]}")
        return done.stdout


class Fault(Protocol):
    """One failure mechanism. ``id`` is the scenario/cause id it reproduces."""

    id: str
    summary: str

    def inject(self, target: FaultTarget) -> None:
        """Apply the change; return when it is in place."""
        ...
