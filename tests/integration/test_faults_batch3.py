"""The scenarios whose mechanism or fix lives on the platform side, proved on real labs.

guest-shutdown, memory-pressure, extension-update-failed and schedule-storm: bring up the
scenario's VMs, warm up if it asks, inject its faults, see the backup fail with the
expected code (following the job a policy's schedule started, if one runs), check what
the mechanism did besides, run the runbook's executable steps as a person would
(``lab.runbook``), see the next backup complete, and always tear the lab down. The
diagnosis phase is the runner's business and not repeated here; that each runbook needs
its fix is the runner's ``without-fix`` variant (test_catalog.py). Phase timings are
printed (``pytest -s``).

The runbooks call ``snaplab policy ...`` and ``snaplab extension ...``: these tests need
the CLI to have those groups.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

import lab
from lab.azure_sdk import compute_client
from lab.extension.protocol import HANDLER_NAME
from lab.faults import FaultTarget, fault_by_id
from lab.platform.roster import Roster
from lab.provision import backups
from lab.provision import lab as labs
from lab.provision.fabric_client import FabricClient
from lab.provision.spec import lab_spec
from lab.provision.ssh_client import lab_targets
from lab.runbook import StepPlace, platform_env, run_steps
from lab.runner import env_exports
from lab.scenario import Scenario, load_scenario

pytestmark = pytest.mark.integration

SCENARIOS = ("guest-shutdown", "memory-pressure", "extension-update-failed", "schedule-storm")
REPO = Path(lab.__file__).resolve().parent.parent
HANDLER_DIR = f"/var/lib/waagent/{HANDLER_NAME}"


def lab_name(scenario_id: str, suffix: str = "") -> str:
    short = "".join(word[0] for word in scenario_id.split("-"))
    return f"fc{os.getpid() % 100000}-{short}{suffix}"


def run_backup(roster: Roster, vm: str) -> dict[str, Any]:
    """Follow the VM's running job (a scheduled one), else an on-demand backup."""
    return backups.follow(roster, backups.current_or_start(roster, vm), lambda _: None)


def guest(roster: Roster, vm: str, script: str) -> subprocess.CompletedProcess[str]:
    container = roster.guest_by_name(vm).container  # type: ignore[union-attr]
    return subprocess.run(
        ["docker", "exec", container, "bash", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def power_code(client: docker.DockerClient, roster: Roster, vm: str) -> tuple[str, str]:
    """(PowerState code, agent display status) from the ARM twin, with the real SDK."""
    arm = labs.arm_endpoint(client, roster.lab)
    compute = compute_client(arm.url, arm.token, arm.subscription_id, arm.ca_file)
    try:
        view = compute.virtual_machines.instance_view(arm.resource_group, vm)
    finally:
        compute.close()
    codes = [s.code for s in view.statuses or [] if (s.code or "").startswith("PowerState/")]
    agent = view.vm_agent.statuses[0].display_status  # type: ignore[union-attr,index]
    return str(codes[0]), str(agent)


@pytest.fixture(scope="module")
def snaplab_on_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PATH whose ``snaplab`` is this checkout's CLI (the runbooks call it)."""
    folder = tmp_path_factory.mktemp("bin")
    shim = folder / "snaplab"
    shim.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import sys
            sys.path.insert(0, {str(REPO)!r})
            from lab.cli import cli
            sys.exit(cli(sys.argv[1:]))
            """
        )
    )
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    yield str(folder)


def step_place(
    client: docker.DockerClient, roster: Roster, scenario: Scenario, bin_dir: str
) -> StepPlace:
    arm = labs.arm_endpoint(client, roster.lab)
    exports = env_exports(arm)  # what `snaplab env` prints
    env = platform_env(exports, roster.lab, scenario.primary_vm)
    env["PATH"] = os.pathsep.join((bin_dir, env["PATH"]))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return StepPlace(
        guests=lab_targets(roster),
        default_vm=scenario.primary_vm,
        platform_env=env,
        cwd=REPO,
    )


def after_failure(
    client: docker.DockerClient, scenario_id: str, roster: Roster, vm: str, failed: dict[str, Any]
) -> None:
    """What each mechanism must have done besides failing the job."""
    fabric = FabricClient(roster.fabric_ip)
    if scenario_id == "guest-shutdown":
        container = client.containers.get(roster.guest_by_name(vm).container)  # type: ignore[union-attr]
        assert container.status == "exited", "the guest OS is still up"
        assert fabric.power_state(vm) == "running"
        assert power_code(client, roster, vm) == ("PowerState/running", "Not Ready")
    if scenario_id == "memory-pressure":
        shown = guest(roster, vm, "systemctl show -p NRestarts --value walinuxagent").stdout
        assert int(shown.strip() or 0) >= 1, "the agent was never killed"
        assert guest(roster, vm, "systemctl is-active report-cache").returncode == 0
    if scenario_id == "extension-update-failed":
        offered = {v["version"]: v["package"] for v in fabric.extension_versions(HANDLER_NAME)}
        assert offered.get("1.0.93.0") == "corrupt", offered
        log = guest(roster, vm, "grep -c 'Error while unzipping' /var/log/waagent.log").stdout
        assert int(log.strip() or 0) >= 1, "the agent never tried the broken package"
    if scenario_id == "schedule-storm":
        assert failed["trigger"] == "Scheduled" and failed["policy"] == "DailyPolicy", failed
        storm = [j for j in fabric.jobs() if j.get("policy") == "DailyPolicy"]
        assert len(storm) == len(roster.guests), storm


def after_runbook(scenario_id: str, roster: Roster, vm: str) -> None:
    fabric = FabricClient(roster.fabric_ip)
    if scenario_id == "guest-shutdown":
        assert fabric.power_state(vm) == "running"
        kinds = [p["consistency"] for p in fabric.restore_points(vm)]
        assert "CrashConsistent" in kinds, kinds  # the stopped VM's offline backup
    if scenario_id == "memory-pressure":
        assert guest(roster, vm, "test ! -e /tmp/report-cache.bin").returncode == 0
    if scenario_id == "extension-update-failed":
        offered = [v["version"] for v in fabric.extension_versions(HANDLER_NAME)]
        assert "1.0.93.0" not in offered, offered
        state = guest(roster, vm, f"cat {HANDLER_DIR}-1.0.92.0/config/HandlerState").stdout
        assert state.strip() == "Enabled", state
    if scenario_id == "schedule-storm":
        policies = fabric.policies()["policies"]
        assert all(len(p["vms"]) <= 4 for p in policies), policies


class Laps:
    """Phase timings, printed with the result."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._started = time.monotonic()

    def __call__(self, phase: str) -> None:
        self.timings[phase] = round(time.monotonic() - self._started, 1)
        self._started = time.monotonic()


def bring_up_and_break(
    client: docker.DockerClient, scenario: Scenario, name: str, lap: Laps
) -> tuple[Roster, dict[str, Any]]:
    """Up, warm-up if asked, inject, and the backup that must fail; returns that job."""
    spec, vm = scenario.spec, scenario.primary_vm
    vms = tuple(f"{v.name}:agent={v.agent}" for v in spec.vms)
    roster = labs.up(client, lab_spec(name, vms), lambda _: None)
    lap("up")
    if spec.warmup_backup:
        warm = run_backup(roster, vm)
        assert warm["status"] == "Completed", warm
        lap("warmup")
    for fault in spec.faults:
        fault_by_id(fault.fault).inject(FaultTarget(client, roster, fault.vm, dict(fault.params)))
    lap("inject")
    failed = run_backup(roster, vm)
    lap("backup_fails")
    assert failed["status"] == "Failed", failed
    assert failed["error_code"] == spec.expect.backup_error, failed
    assert failed["seconds"] <= spec.limits.backup_seconds, failed
    return roster, failed


@pytest.mark.parametrize("scenario_id", SCENARIOS)
def test_fault_fails_the_backup_and_the_runbook_clears_it(
    docker_client: docker.DockerClient, snaplab_on_path: str, scenario_id: str
) -> None:
    scenario = load_scenario(scenario_id)
    spec, vm = scenario.spec, scenario.primary_vm
    name = lab_name(scenario_id)
    lap = Laps()
    try:
        roster, failed = bring_up_and_break(docker_client, scenario, name, lap)
        after_failure(docker_client, scenario_id, roster, vm, failed)

        place = step_place(docker_client, roster, scenario, snaplab_on_path)
        outcome = run_steps(scenario.steps, place)
        lap("runbook")
        transcript = outcome.transcript(str(scenario.runbook_path))
        assert outcome.failed is None, f"{outcome.failed.failure()}\n{transcript}"  # type: ignore[union-attr]

        done = run_backup(roster, vm)
        lap("backup_completes")
        assert done["status"] == "Completed", done
        assert done["seconds"] <= spec.limits.backup_seconds, done
        after_runbook(scenario_id, roster, vm)
        print(
            f"\n{scenario_id}: failed with {failed['error_code']} in {failed['seconds']:.1f} s, "
            f"completed in {done['seconds']:.1f} s after the runbook; phases {lap.timings}"
        )
    finally:
        labs.down(docker_client, name)
    assert labs.lab_names(docker_client).count(name) == 0
