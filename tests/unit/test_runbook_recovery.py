"""guest-shutdown's and schedule-storm's platform steps, run as the runner runs them
(``python -c``, the lab's exports in the environment) against the twin served over TLS,
with the real backup service behind it (``tests/unit/recovery_services_rig.py``): the SDK
code of the runbooks finds the vault, backs a stopped VM up, and spreads a crowded
policy's VMs so that their next scheduled runs complete."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.platform.arm.managed_identity import PATH as IDENTITY_PATH
from lab.runbook import Step, parse_runbook
from tests.unit.recovery_services_rig import TOKEN, Vault, run_now, serve_vault

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def platform_steps(scenario: str) -> list[Step]:
    runbook = SCENARIOS / scenario / "runbook.md"
    return [s for s in parse_runbook(runbook.read_text(), str(runbook)) if s.kind == "platform"]


def run_step(vault: Vault, step: Step, vm: str = "vm1") -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_"))},
        "ARM_ENDPOINT": vault.endpoint,
        "IDENTITY_ENDPOINT": f"{vault.endpoint}{IDENTITY_PATH}",
        "IDENTITY_HEADER": TOKEN,
        "AZURE_SUBSCRIPTION_ID": vault.roster.subscription_id,
        "AZURE_RESOURCE_GROUP": vault.roster.resource_group,
        "REQUESTS_CA_BUNDLE": str(vault.ca_file),
        "SSL_CERT_FILE": str(vault.ca_file),
        "SNAPLAB_VM": vm,
    }
    return subprocess.run(
        [sys.executable, "-c", step.code],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.fixture
def quick_vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Vault]:
    """Two VMs; a backup runs to its end as it starts."""
    yield from serve_vault(tmp_path, monkeypatch, spawn=run_now)


@pytest.fixture
def storm_vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Vault]:
    """Nine VMs on one daily policy, and the lab's Azure clock running (fast) with the
    schedules: the fake clock moves a quarter lab second every 50 ms and the scheduler
    looks each time."""
    rig = serve_vault(tmp_path, monkeypatch, vms=9, spawn=run_now)
    vault = next(rig)
    service = vault.service
    service.set_policy("Crowded", "05:00")
    for guest in vault.roster.guests:
        service.protect(guest.name, "Crowded")
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.05):
            vault.clock.advance(0.25)
            service.scheduler.tick()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    yield vault
    stop.set()
    ticker.join(timeout=5)
    next(rig, None)


def test_guest_shutdown_backs_the_stopped_vm_up_crash_consistent(quick_vault: Vault) -> None:
    steps = platform_steps("guest-shutdown")
    assert [s.fix for s in steps] == [False, True, False, True]
    backup_step = steps[2]
    quick_vault.agent.power["vm1"] = "stopped"
    done = run_step(quick_vault, backup_step)
    assert done.returncode == 0, done.stderr
    assert "vm1 is protected by vault unit-vault" in done.stdout
    assert ": Completed in " in done.stdout
    assert ": CrashConsistent at " in done.stdout
    (point,) = quick_vault.service.restore_points("vm1")
    assert point.consistency == "CrashConsistent"


def test_guest_shutdown_backup_step_fails_loudly_when_the_job_fails(quick_vault: Vault) -> None:
    quick_vault.agent.ready = False  # a running VM whose agent is silent: refused
    done = run_step(quick_vault, platform_steps("guest-shutdown")[2])
    assert done.returncode != 0
    assert "UserErrorGuestAgentStatusUnavailable" in done.stdout + done.stderr


def test_schedule_storm_spreads_the_policy_and_the_next_runs_complete(
    storm_vault: Vault,
) -> None:
    look, fix, look_again = platform_steps("schedule-storm")
    assert (look.fix, fix.fix, look_again.fix) == (False, True, False)
    shown = run_step(storm_vault, look)
    assert shown.returncode == 0, shown.stderr
    assert "policy Crowded: daily at 05:00 UTC, 9 VMs" in shown.stdout
    done = run_step(storm_vault, fix)
    assert done.returncode == 0, done.stdout + done.stderr
    members = {p["name"]: p["vms"] for p in storm_vault.service.policies()["policies"]}
    assert sorted(len(vms) for vms in members.values()) == [1, 4, 4]
    assert set(members) == {"Crowded", "Crowded-2", "Crowded-3"}
    assert sum(line.endswith(" Completed ") for line in done.stdout.splitlines()) >= 9
    again = run_step(storm_vault, look_again)
    assert again.returncode == 0, again.stderr
    assert "policy Crowded-3: daily at" in again.stdout


def test_schedule_storm_refuses_when_there_is_no_storm(quick_vault: Vault) -> None:
    done = run_step(quick_vault, platform_steps("schedule-storm")[1])
    assert done.returncode != 0
    assert "this is not a storm" in done.stderr
