"""Platform checks against a canned instance view (real SDK models) and job list (the NSG
check: test_checks_nsg)."""

from __future__ import annotations

from typing import Any

from checks.fakes import FakeHost, FakePlatform, fake_context, healthy_host, healthy_platform
from checks.on_platform.instance_view import extensions, power_state, vm_agent
from checks.on_platform.jobs import backup_jobs

TIMEOUT = "GuestAgentSnapshotTaskStatusError"


def not_ready(platform: FakePlatform) -> FakePlatform:
    platform.view["vmAgent"] = {
        "vmAgentVersion": "Unknown",
        "statuses": [
            {
                "code": "ProvisioningState/Unavailable",
                "level": "Warning",
                "displayStatus": "Not Ready",
                "message": "VM status blob is found but not updated for 10 minutes.",
            }
        ],
    }
    return platform


def test_running_vm_with_running_os_passes() -> None:
    result = power_state(fake_context(healthy_host(), healthy_platform()))
    assert result.passed and "PowerState/running" in result.detail


def test_running_vm_whose_os_is_down_fails() -> None:
    host = FakeHost().on(
        "systemctl is-system-running",
        "",
        rc=1,
        stderr="Error response from daemon: Container abc is not running\n",
    )
    result = power_state(fake_context(host, healthy_platform()))
    assert not result.passed
    assert "is not running" in result.detail and "its OS is down" in result.detail


def test_os_shutting_down_counts_as_down() -> None:
    host = FakeHost().on("systemctl is-system-running", "stopping\n")
    assert not power_state(fake_context(host, healthy_platform())).passed


def test_stopped_vm_with_os_down_passes() -> None:
    platform = healthy_platform()
    platform.view["statuses"] = [{"code": "PowerState/stopped"}]
    host = FakeHost().on("systemctl is-system-running", "", rc=1, stderr="not running")
    assert power_state(fake_context(host, platform)).passed


def test_ready_agent_passes() -> None:
    assert vm_agent(fake_context(healthy_host(), healthy_platform())).passed


def test_not_ready_agent_fails() -> None:
    result = vm_agent(fake_context(healthy_host(), not_ready(healthy_platform())))
    assert not result.passed and "Not Ready" in result.detail


def test_old_agent_version_fails() -> None:
    platform = healthy_platform()
    platform.view["vmAgent"]["vmAgentVersion"] = "2.2.47"
    result = vm_agent(fake_context(healthy_host(), platform))
    assert not result.passed and "below the minimum" in result.detail


def test_agent_of_a_stopped_vm_is_not_expected() -> None:
    platform = not_ready(healthy_platform())
    platform.view["statuses"] = [{"code": "PowerState/stopped"}]
    assert vm_agent(fake_context(healthy_host(), platform)).passed


def test_healthy_extensions_pass() -> None:
    assert extensions(fake_context(healthy_host(), healthy_platform())).passed


def test_failed_extension_fails() -> None:
    platform = healthy_platform()
    platform.view["extensions"][0]["statuses"] = [
        {
            "code": "ProvisioningState/failed/76",
            "level": "Error",
            "displayStatus": "Provisioning failed",
            "message": "FailedRetryableSnapshotFailedNoNetwork",
        }
    ]
    result = extensions(fake_context(healthy_host(), platform))
    assert not result.passed and "failed/76" in result.detail


def test_handler_not_ready_fails() -> None:
    platform = healthy_platform()
    platform.view["vmAgent"]["extensionHandlers"][0]["status"] = {
        "code": "ProvisioningState/failed/1009",
        "displayStatus": "Not Ready",
        "message": "Non-zero exit code: 2",
    }
    assert not extensions(fake_context(healthy_host(), platform)).passed


def job(
    vm: str, status: str, start: str, end: str | None, error: str | None = None
) -> dict[str, Any]:
    return {
        "job_id": f"{vm}-{start}",
        "vm": vm,
        "status": status,
        "error_code": error,
        "error_message": "timed out" if error else None,
        "started_at": f"2026-11-28T01:00:{start}Z",
        "ended_at": f"2026-11-28T01:00:{end}Z" if end else None,
        "seconds": 24.0,
    }


def test_latest_finished_job_decides() -> None:
    platform = healthy_platform()
    platform.job_list = [
        job("vm1", "Failed", "30.000", "54.000", TIMEOUT),
        job("vm1", "Completed", "00.000", "08.000"),
        job("vm2", "Completed", "40.000", "48.000"),
    ]
    result = backup_jobs(fake_context(healthy_host(), platform))
    assert not result.passed and TIMEOUT in result.detail
    platform.job_list.append(job("vm1", "Completed", "55.000", "59.000"))
    assert backup_jobs(fake_context(healthy_host(), platform)).passed


def test_no_jobs_pass() -> None:
    assert backup_jobs(fake_context(healthy_host(), FakePlatform())).passed
