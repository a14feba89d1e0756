"""Diagnosing a VM whose OS is down, from what the checks observe only: the platform's
PowerState, the agent's status and whether the guest answers. A VM Azure shows stopped
is no cause; a VM it still shows running with a silent agent is guest-shutdown."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import docker.errors
import requests

from checks.fakes import FakeHost, FakePlatform, fake_context, healthy_platform
from checks.host import probe
from checks.session import GuestSession
from lab.diagnosis.engine import diagnose_context

FAILED_JOB = {
    "job_id": "5d0a6f2e-0f4e-4e53-9d0f-6d3a1f3f9c11",
    "vm": "vm1",
    "status": "Failed",
    "error_code": "GuestAgentSnapshotTaskStatusError",
    "error_message": "Could not communicate with the VM agent for snapshot status",
    "started_at": "2026-11-28T01:00:00.000Z",
    "ended_at": "2026-11-28T01:00:23.750Z",
    "seconds": 23.75,
}
STALE_AGENT: dict[str, Any] = {
    "vmAgentVersion": "2.7.3.0",
    "statuses": [
        {
            "code": "ProvisioningState/Unavailable",
            "level": "Warning",
            "displayStatus": "Not Ready",
            "message": "VM status blob is found but not updated for 21 lab seconds.",
        }
    ],
}


def os_down() -> FakeHost:
    """``docker exec`` into a container whose OS halted."""
    return FakeHost().on(
        "systemctl is-system-running",
        "",
        rc=1,
        stderr="Error response from daemon: container abc is not running\n",
    )


def platform(power: str, *, agent_ready: bool, failed_job: bool = True) -> FakePlatform:
    shown = healthy_platform()
    shown.view["statuses"] = [
        {"code": "ProvisioningState/succeeded"},
        {"code": f"PowerState/{power}", "displayStatus": f"VM {power}"},
    ]
    if not agent_ready:
        shown.view["vmAgent"] = STALE_AGENT
    if failed_job:
        shown.job_list = [FAILED_JOB]
    return shown


def test_a_vm_its_own_os_stopped_is_no_cause() -> None:
    found = diagnose_context(fake_context(os_down(), platform("stopped", agent_ready=False)))
    assert found.causes == ()
    checks = {c.id: c for c in found.checks}
    assert checks["platform.power_state"].passed
    assert checks["platform.vm_agent"].passed  # no agent report expected of a stopped VM


def test_running_on_the_platform_with_the_os_down_and_the_agent_silent() -> None:
    found = diagnose_context(fake_context(os_down(), platform("running", agent_ready=False)))
    assert [c.id for c in found.causes] == ["guest-shutdown"]
    (cause,) = found.causes
    assert any("PowerState/running" in line for line in cause.evidence)
    assert any("Not Ready" in line for line in cause.evidence)


def test_an_os_down_with_a_fresh_agent_report_is_a_reboot_not_a_cause() -> None:
    shown = platform("running", agent_ready=True, failed_job=False)
    assert diagnose_context(fake_context(os_down(), shown)).causes == ()


class ExitedContainerApi:
    """Docker's answer to ``exec`` in a container whose OS halted."""

    def exec_create(self, container: str, cmd: list[str], **_: object) -> dict[str, str]:
        response = requests.Response()
        response.status_code = 409
        raise docker.errors.APIError(
            "409 Client Error",
            response=response,
            explanation=f"Container {container} is not running",
        )


def test_the_guest_session_of_a_halted_os_answers_as_docker_exec_does() -> None:
    client = SimpleNamespace(api=ExitedContainerApi())
    session = GuestSession(client, "snaplab-lab-vm1", priority=None)  # type: ignore[arg-type]
    guest = probe(session)
    assert not guest.answers and not guest.running
    assert guest.state == "Error response from daemon: Container snaplab-lab-vm1 is not running"
