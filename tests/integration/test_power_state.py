"""Power state as Azure reports it, on a real lab.

``systemctl poweroff`` inside a real guest: ``snaplab status --json`` shows the VM
``stopped`` within the platform's report period, the Azure SDK's instance view shows
``PowerState/stopped``, an on-demand backup completes offline (CrashConsistent, without
the agent), the diagnosis names no cause, and ``begin_start`` brings the VM and its agent
back. Then ``systemctl reboot`` inside the guest: the VM comes back by itself and never
shows ``stopped``.
The lab has its own name and is always removed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import docker
import pytest

from lab.diagnosis.engine import diagnose
from lab.platform.timescale import PLATFORM_POWER_REPORT_PERIOD
from lab.provision import backups
from lab.provision import lab as labs
from lab.provision.spec import VmSpec
from tests.integration.conftest import RUN_ID, RunningLab, _bring_up

pytestmark = pytest.mark.integration

VM = "vm1"
# The fabric is read over HTTP on the lab bridge; this much is the round trip, not the
# platform's lateness.
READ_MARGIN = 0.5


@pytest.fixture(scope="module")
def power_lab(docker_client: docker.DockerClient) -> Iterator[RunningLab]:
    running = _bring_up(docker_client, f"it{RUN_ID}pw", (VmSpec(VM),))
    try:
        yield running
    finally:
        labs.down(docker_client, running.name)


def _finished_at(raw: str) -> float:
    """Docker's ``FinishedAt`` (RFC 3339, nanoseconds) as a Unix time."""
    head, _, rest = raw.rstrip("Z").partition(".")
    fraction = float("0." + rest) if rest else 0.0
    return datetime.fromisoformat(head + "+00:00").timestamp() + fraction


def _guest(lab: RunningLab, script: str) -> None:
    container = lab.roster.guest_by_name(VM).container  # type: ignore[union-attr]
    subprocess.run(["docker", "exec", container, "bash", "-c", script], check=True, timeout=60)


def _container(lab: RunningLab) -> docker.models.containers.Container:
    return lab.client.containers.get(lab.roster.guest_by_name(VM).container)  # type: ignore[union-attr]


def _wait(predicate: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} not within {seconds:.0f} s"
        time.sleep(0.1)


def _status(lab: RunningLab) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "lab", "status", lab.name, "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    (vm,) = [v for v in json.loads(out.stdout)["vms"] if v["name"] == VM]
    assert isinstance(vm, dict)
    return vm


def _instance_view(lab: RunningLab) -> tuple[str, str, str]:
    """(PowerState code, its display status, the agent's display status), through the SDK."""
    compute, arm = lab.compute()
    try:
        view = compute.virtual_machines.instance_view(arm.resource_group, VM)
    finally:
        compute.close()
    (power,) = [s for s in view.statuses or [] if (s.code or "").startswith("PowerState/")]
    agent = view.vm_agent.statuses[0].display_status if view.vm_agent else None
    return str(power.code), str(power.display_status), str(agent)


def test_poweroff_inside_the_guest_shows_stopped_and_backs_up_offline(
    power_lab: RunningLab,
) -> None:
    lab = power_lab
    period = PLATFORM_POWER_REPORT_PERIOD.lab_seconds(lab.roster.time_scale)
    assert lab.fabric.power_state(VM) == "running"

    _guest(lab, "systemctl poweroff --no-block")
    container = _container(lab)
    _wait(lambda: (container.reload(), container.status)[1] == "exited", 60, "the OS halting")
    halted = _finished_at(container.attrs["State"]["FinishedAt"])
    _wait(lambda: lab.fabric.power_state(VM) == "stopped", period + 10, "PowerState/stopped")
    late = time.time() - halted
    print(f"\nOS halted (exit {container.attrs['State']['ExitCode']}); stopped after {late:.2f} s")
    assert late <= period + READ_MARGIN, f"stopped after {late:.2f} s, report period {period} s"

    assert _status(lab)["power_state"] == "stopped"
    assert _instance_view(lab)[:2] == ("PowerState/stopped", "VM stopped")

    job = backups.follow(lab.roster, backups.start(lab.roster, VM), lambda _: None)
    assert job["status"] == "Completed", job
    newest = lab.fabric.restore_points(VM)[0]
    assert newest["consistency"] == "CrashConsistent", newest

    found = diagnose(lab.client, lab.roster, VM)  # a VM Azure shows stopped is no cause
    assert found.causes == (), found.causes

    compute, arm = lab.compute()
    try:
        compute.virtual_machines.begin_start(arm.resource_group, VM).result()
    finally:
        compute.close()
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert lab.fabric.power_state(VM) == "running"
    _wait(lambda: _fresh_ready(lab, started), 120, "a Ready report of the booted agent")
    assert _instance_view(lab)[:2] == ("PowerState/running", "VM running")


def _fresh_ready(lab: RunningLab, since: str) -> bool:
    agent = _status(lab)["agent"]
    assert isinstance(agent, dict)
    return agent["status"] == "Ready" and str(agent["last_report"] or "") > since


def test_a_reboot_inside_the_guest_never_shows_stopped(power_lab: RunningLab) -> None:
    lab = power_lab
    period = PLATFORM_POWER_REPORT_PERIOD.lab_seconds(lab.roster.time_scale)
    _wait(lambda: _instance_view(lab)[2] == "Ready", 120, "the agent Ready")
    container = _container(lab)
    booted = container.attrs["State"]["StartedAt"]

    _guest(lab, "systemctl reboot --no-block")
    seen = set()
    deadline = time.monotonic() + 60
    while True:
        seen.add(lab.fabric.power_state(VM))
        container.reload()
        if container.attrs["State"]["StartedAt"] != booted and container.status == "running":
            break
        assert time.monotonic() < deadline, "the VM did not come back from its reboot"
        time.sleep(0.1)
    until = time.monotonic() + 2 * period  # a late report would show within this
    while time.monotonic() < until:
        seen.add(lab.fabric.power_state(VM))
        time.sleep(0.1)
    assert seen == {"running"}, seen
    assert container.attrs["RestartCount"] == 0  # the host's reset, not a Docker policy
    rebooted = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    _wait(lambda: _fresh_ready(lab, rebooted), 120, "a Ready report after the reboot")
