"""The schedule-storm check reads the trace a busy host leaves in the job list: this VM's
job timed out while other VMs' jobs that ran with it completed. No slot count anywhere:
the same evidence holds whatever the host's capacity, and one timeout is enough."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from checks.fakes import FakePlatform, fake_context, healthy_host, healthy_platform
from checks.on_platform.jobs import concurrent_backups
from checks.result import CheckResult
from lab.diagnosis import causes_from
from lab.diagnosis.rules import GUEST_CAUSE_CHECKS

TIMEOUT = "GuestAgentSnapshotTaskStatusError"
T0 = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)


def job(
    vm: str,
    start: float,
    end: float | None,
    error: str | None = None,
    *,
    failed: bool = False,
    policy: str | None = "DailyPolicy",
) -> dict[str, Any]:
    ended = T0 + timedelta(seconds=end) if end is not None else None
    status = "InProgress" if end is None else ("Failed" if error or failed else "Completed")
    return {
        "job_id": f"{vm}-{start}",
        "vm": vm,
        "status": status,
        "error_code": error,
        "error_message": "Could not communicate with the VM agent" if error else None,
        "started_at": (T0 + timedelta(seconds=start)).isoformat().replace("+00:00", "Z"),
        "ended_at": ended.isoformat().replace("+00:00", "Z") if ended else None,
        "seconds": (end - start) if end is not None else None,
        "trigger": "Scheduled" if policy else "OnDemand",
        "policy": policy,
    }


def check(jobs: list[dict[str, Any]]) -> CheckResult:
    platform = healthy_platform()
    platform.job_list = jobs
    return concurrent_backups(fake_context(healthy_host(), platform))


def queue(vms: int, capacity: int, service: float, timeout: float) -> list[dict[str, Any]]:
    """A FIFO host of any capacity: vm2..vmN first, vm1 (the case) last."""
    order = [f"vm{i}" for i in range(2, vms + 1)] + ["vm1"]
    free = [0.0] * capacity
    jobs = []
    for vm in order:
        slot = min(range(capacity), key=lambda i: free[i])
        done = free[slot] + service
        if done > timeout:
            jobs.append(job(vm, 0.0, timeout, TIMEOUT))
        else:
            free[slot] = done
            jobs.append(job(vm, 0.0, done))
    return jobs


@pytest.mark.parametrize(("vms", "capacity"), [(3, 1), (5, 2), (9, 4), (13, 6), (25, 12)])
def test_a_queued_timeout_is_found_whatever_the_hosts_capacity(vms: int, capacity: int) -> None:
    jobs = queue(vms, capacity, service=10.0, timeout=24.0)
    assert jobs[-1]["error_code"] == TIMEOUT  # the case's VM waited too long
    result = check(jobs)
    assert result.failed, result.detail
    assert "completed while it waited" in result.detail and "DailyPolicy" in result.detail


def test_one_timeout_among_many_completed_is_enough() -> None:
    jobs = [job(f"vm{i}", 0.0, 8.0 + i) for i in range(2, 9)] + [job("vm1", 0.0, 24.0, TIMEOUT)]
    result = check(jobs)
    assert result.failed and "7 completed while it waited" in result.detail
    assert "0 timed out as well" in result.detail


def test_a_lone_healthy_job_is_no_storm() -> None:
    assert check([job("vm1", 0.0, 12.0)]).passed


def test_a_lone_timeout_is_no_storm() -> None:
    """A VM that times out alone (agent stopped, blocked egress...) is its own cause."""
    result = check([job("vm1", 0.0, 24.0, TIMEOUT, policy=None)])
    assert result.passed and "no other backup job ran with it" in result.detail


def test_timeouts_together_with_nothing_completed_are_no_storm() -> None:
    """Every VM timing out together says nothing about a busy host (a shared cause)."""
    jobs = [job(f"vm{i}", 0.0, 24.0, TIMEOUT) for i in range(1, 7)]
    result = check(jobs)
    assert result.passed and "0 completed while it waited" in result.detail


def test_completed_jobs_of_this_vm_or_outside_its_wait_do_not_count() -> None:
    jobs = [
        job("vm1", 100.0, 124.0, TIMEOUT),
        job("vm1", 0.0, 10.0),  # the VM's own earlier job
        job("vm2", 0.0, 90.0),  # ended before the wait began
        job("vm3", 125.0, 130.0),  # started after it ended
    ]
    assert check(jobs).passed


def test_a_job_running_across_the_wait_that_completes_inside_it_counts() -> None:
    jobs = [job("vm1", 10.0, 34.0, TIMEOUT, policy=None), job("vm2", 0.0, 20.0, policy=None)]
    result = check(jobs)
    assert result.failed and "1 on demand" in result.detail


def test_the_vms_latest_finished_job_decides() -> None:
    jobs = [*queue(9, 4, service=10.0, timeout=24.0), job("vm1", 200.0, 210.0)]
    assert check(jobs).passed


def test_a_job_that_failed_otherwise_is_no_storm() -> None:
    jobs = [job(f"vm{i}", 0.0, 10.0) for i in range(2, 6)]
    jobs.append(job("vm1", 0.0, 20.0, "ExtensionSnapshotFailedNoNetwork"))
    assert check(jobs).passed


def test_still_running_jobs_count_as_running() -> None:
    jobs = [job("vm2", 0.0, None), job("vm3", 0.0, 10.0), job("vm1", 0.0, 24.0, TIMEOUT)]
    result = check(jobs)
    assert result.failed and "2 other backup job(s)" in result.detail


def test_no_jobs_pass() -> None:
    assert concurrent_backups(fake_context(healthy_host(), FakePlatform())).passed


def _results(failing: set[str]) -> list[CheckResult]:
    from checks.registry import ALL_CHECKS

    return [CheckResult(c.id, c.id not in failing, f"observed {c.id}") for c in ALL_CHECKS]


def test_the_rule_needs_a_ready_agent() -> None:
    storm = {"platform.concurrent_backups", "platform.backup_jobs"}
    assert [c.id for c in causes_from(_results(storm))] == ["schedule-storm"]
    assert "schedule-storm" not in [
        c.id for c in causes_from(_results(storm | {"platform.vm_agent"}))
    ]


@pytest.mark.parametrize("own", GUEST_CAUSE_CHECKS)
def test_a_cause_in_the_vm_itself_is_not_a_storm(own: str) -> None:
    storm = {"platform.concurrent_backups", "platform.backup_jobs"}
    assert "schedule-storm" not in [c.id for c in causes_from(_results(storm | {own}))]
