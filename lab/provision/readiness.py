"""Wait until every guest's agent reports Ready, or say precisely why not.

When a guest misses the deadline the error names the VM and quotes what its own
agent logged last (an ERROR or WARNING line from /var/log/waagent.log), because that
is the first thing an engineer would look at on a real VM.
"""

from __future__ import annotations

import time

import docker
from docker.errors import APIError, NotFound

from lab.errors import PlatformError, ProvisionFailed
from lab.platform.roster import GuestEntry, Roster
from lab.provision.fabric_client import FabricClient

POLL_SECONDS = 1.0


def wait_until_ready(
    client: docker.DockerClient, roster: Roster, fabric: FabricClient, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    pending = {g.name for g in roster.guests}
    while pending:
        try:
            views = fabric.vms()
        except PlatformError:
            views = []
        ready = {v["name"] for v in views if (v.get("agent") or {}).get("status") == "Ready"}
        pending -= ready
        if not pending:
            return
        if time.monotonic() > deadline:
            first = next(g for g in roster.guests if g.name in pending)
            reason = why_not_ready(client, first)
            raise ProvisionFailed(f"{first.name}: agent not Ready after {timeout:.0f} s; {reason}")
        time.sleep(POLL_SECONDS)


def wait_for_disks(fabric: FabricClient, timeout: float) -> None:
    """Wait until the fabric has the VMs' disks in storage (Azurite started last)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if fabric.storage_ready():
                return
        except PlatformError:
            pass
        if time.monotonic() > deadline:
            raise ProvisionFailed(
                f"storage: the VMs' disks were not in Azurite after {timeout:.0f} s "
                "(see `docker logs` of the lab's storage and fabric containers)"
            )
        time.sleep(POLL_SECONDS)


def why_not_ready(client: docker.DockerClient, guest: GuestEntry) -> str:
    """One line from the guest explaining a silent agent."""
    try:
        container = client.containers.get(guest.container)
    except NotFound:
        return "its container is gone"
    if container.status != "running":
        return f"its container is {container.status}"
    log = _exec(container, ["tail", "-n", "300", "/var/log/waagent.log"])
    if log is None:
        unit = _exec(container, ["systemctl", "is-active", "walinuxagent"]) or "unknown"
        return f"no /var/log/waagent.log (walinuxagent is {unit.strip()})"
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    problems = [line for line in lines if " ERROR " in line or " WARNING " in line]
    last = (problems or lines or ["waagent.log is empty"])[-1]
    return f"waagent.log says: {last[:240]}"


def _exec(container: docker.models.containers.Container, argv: list[str]) -> str | None:
    try:
        code, output = container.exec_run(argv)
    except APIError:
        return None
    return output.decode(errors="replace") if code == 0 else None
