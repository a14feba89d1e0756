"""Running every check for a VM: order, gating on a guest that does not answer, and a
broken observation that must not stop the others."""

from __future__ import annotations

from checks.context import CheckContext
from checks.fakes import FakeHost, fake_context, healthy_host, healthy_platform
from checks.registry import (
    ALL_CHECKS,
    GUEST_CHECKS,
    PLATFORM_CHECKS,
    Scope,
    check_by_id,
    run_checks,
)
from lab.diagnosis import diagnose_context


def test_ids_are_unique_and_scoped() -> None:
    ids = [check.id for check in ALL_CHECKS]
    assert len(ids) == len(set(ids))
    assert all(c.scope is Scope.GUEST and c.id.startswith("guest.") for c in GUEST_CHECKS)
    assert all(c.scope is Scope.PLATFORM and c.id.startswith("platform.") for c in PLATFORM_CHECKS)


def test_healthy_vm_passes_every_check() -> None:
    found = run_checks(fake_context(healthy_host(), healthy_platform()))
    assert [r.id for r in found] == [c.id for c in ALL_CHECKS]
    assert [r.id for r in found if not r.passed] == []


def test_guest_checks_are_skipped_when_the_guest_does_not_answer() -> None:
    down = FakeHost().on("systemctl is-system-running", "", rc=1, stderr="is not running")
    found = run_checks(fake_context(down, healthy_platform()))
    assert [r.id for r in found] == [c.id for c in PLATFORM_CHECKS]


def test_an_exception_becomes_an_unobserved_result() -> None:
    class Broken:
        def instance_view(self, vm: str) -> object:
            raise ConnectionError("twin down")

        def jobs(self) -> list[object]:
            return []

        def nsg_rules(self) -> list[object]:
            return []

    ctx = fake_context(healthy_host(), healthy_platform())
    broken = CheckContext(ctx.roster, ctx.vm, ctx.host, Broken(), 23.75)  # type: ignore[arg-type]
    result = check_by_id("platform.vm_agent")(broken)
    assert not result.observed and not result.passed
    assert result.detail == "not observed: ConnectionError: twin down"


def test_diagnosis_of_a_healthy_fake_vm_is_empty_and_serialisable() -> None:
    diagnosis = diagnose_context(fake_context(healthy_host(), healthy_platform()))
    assert diagnosis.cause_ids == () and diagnosis.healthy
    data = diagnosis.to_json()
    assert data["vm"] == "vm1" and data["causes"] == []
    assert set(data["checks"][0]) == {"id", "passed", "detail"}


def test_diagnosis_of_a_stopped_agent() -> None:
    host = healthy_host().on(
        "systemctl show -p LoadState,ActiveState",
        "LoadState=loaded\nActiveState=inactive\nSubState=dead\n"
        "InactiveEnterTimestamp=Sat 2026-11-28 00:33:49 UTC\n",
    )
    host.on("ps -eo pid=,etimes=,args=", "    1   60 /sbin/init\n")
    diagnosis = diagnose_context(fake_context(host, healthy_platform()))
    assert diagnosis.cause_ids == ("agent-stopped",)
    (cause,) = diagnosis.to_json()["causes"]
    assert cause["runbook"] == "scenarios/agent-stopped/runbook.md"
    assert cause["evidence"] == [
        "guest.agent_running: walinuxagent: inactive (dead) since Sat 2026-11-28 00:33:49 UTC; "
        "no waagent process"
    ]
