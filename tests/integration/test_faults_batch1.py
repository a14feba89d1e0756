"""Each scenario of the first batch, proved by hand on a real lab.

For every scenario: bring up its VMs, warm up if it asks, inject its faults, and see the
backup fail with the scenario's expected code; run the runbook's executable steps as a
person would (``lab.runbook``); see the next backup complete; always tear the lab down
and check nothing of it (containers, firewall rules) is left. The diagnosis phase is the
runner's business and not repeated here. Phase timings are printed (``pytest -s``).
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
from lab import nsg_api
from lab.faults import FaultTarget, fault_by_id
from lab.platform.roster import Roster
from lab.provision import backups
from lab.provision import lab as labs
from lab.provision.fabric_client import FabricClient
from lab.provision.labels import rule_comment
from lab.provision.spec import lab_spec
from lab.provision.ssh_client import lab_targets
from lab.runbook import StepPlace, platform_env, run_steps
from lab.runner.drivers import env_exports
from lab.scenario import Scenario, load_scenario

pytestmark = pytest.mark.integration

SCENARIOS = (
    "agent-stopped",
    "extensions-disabled",
    "prescript-hang",
    "broken-extension",
    "blocked-egress",
    "cpu-saturation",
)
REPO = Path(lab.__file__).resolve().parent.parent
HANDLER = "/var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux"


def lab_name(scenario_id: str) -> str:
    short = "".join(word[0] for word in scenario_id.split("-"))
    return f"fa{os.getpid() % 100000}-{short}"


def run_backup(roster: Roster, vm: str) -> dict[str, Any]:
    return backups.follow(roster, backups.start(roster, vm), lambda _: None)


def guest(roster: Roster, vm: str, script: str) -> subprocess.CompletedProcess[str]:
    container = roster.guest_by_name(vm).container  # type: ignore[union-attr]
    return subprocess.run(
        ["docker", "exec", container, "bash", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def firewall_rules_of(lab_id: str) -> list[str]:
    listing = subprocess.run(
        ["iptables", "-w", "-S", "DOCKER-USER"], capture_output=True, text=True, check=False
    ).stdout
    return [line for line in listing.splitlines() if f'"{rule_comment(lab_id)}"' in line]


@pytest.fixture(scope="module")
def snaplab_on_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PATH whose ``snaplab`` has the ``nsg`` group, whether or not ``lab.cli`` already
    registers it (the runbooks call ``snaplab nsg ...`` on the platform)."""
    folder = tmp_path_factory.mktemp("bin")
    shim = folder / "snaplab"
    shim.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import sys
            sys.path.insert(0, {str(REPO)!r})
            from lab.cli import cli
            if "nsg" not in cli.commands:
                from lab.cli_nsg import nsg
                cli.add_command(nsg)
            sys.exit(cli(sys.argv[1:]))
            """
        )
    )
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    yield str(folder)


def step_place(
    client: docker.DockerClient, roster: Roster, scenario: Scenario, bin_dir: str
) -> StepPlace:
    exports = env_exports(labs.arm_endpoint(client, roster.lab))  # what `snaplab env` prints
    env = platform_env(exports, roster.lab, scenario.primary_vm)
    env["PATH"] = os.pathsep.join((bin_dir, env["PATH"]))
    return StepPlace(
        guests=lab_targets(roster),
        default_vm=scenario.primary_vm,
        platform_env=env,
        cwd=REPO,
    )


def after_failure(scenario_id: str, roster: Roster, vm: str) -> None:
    """What each mechanism must (and must not) have done besides failing the job."""
    fabric = FabricClient(roster.fabric_ip)
    if scenario_id in ("blocked-egress", "prescript-hang"):
        # The agent itself keeps working: only the extension's path is broken.
        assert fabric.vm(vm)["agent"]["status"] == "Ready", fabric.vm(vm)
    if scenario_id == "extensions-disabled":
        # Running, but reporting only every 5 real minutes (so Not Ready in the lab).
        assert guest(roster, vm, "pgrep -f 'waagent -run-exthandlers'").returncode == 0
    if scenario_id == "agent-stopped":
        assert guest(roster, vm, "pgrep -f 'waagent -daemon'").returncode == 1
    if scenario_id == "broken-extension":
        log = guest(
            roster, vm, "grep -c 'op=Enable, message=.*Non-zero exit code' /var/log/waagent.log"
        ).stdout.strip()
        assert int(log or 0) >= 1, "the agent did not see the handler's enable fail"


def after_runbook(scenario_id: str, roster: Roster, vm: str) -> None:
    if scenario_id == "blocked-egress":
        # Leave a rule behind: teardown must remove NSG rules with the rest of the lab.
        network, group = nsg_api.connect(docker.from_env(), roster.lab)
        where = nsg_api.find(network, group, vm)
        nsg_api.put(where, "LeftForTeardown", nsg_api.storage_rule("Deny", 4000))
        assert [r.name for r in nsg_api.rules(where)] == ["LeftForTeardown"]
        assert any("LeftForTeardown" in line for line in firewall_rules_of(roster.lab))
    if scenario_id == "broken-extension":
        state = guest(roster, vm, f"cat {HANDLER}-*/config/HandlerState").stdout.strip()
        assert state == "Enabled", f"the handler was not reinstalled: {state!r}"
        check = guest(roster, vm, f"cd {HANDLER}-*/main && python3 -c 'import vmsnapshot.cli'")
        assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("scenario_id", SCENARIOS)
def test_fault_fails_the_backup_and_the_runbook_clears_it(
    docker_client: docker.DockerClient, snaplab_on_path: str, scenario_id: str
) -> None:
    scenario = load_scenario(scenario_id)
    spec, vm = scenario.spec, scenario.primary_vm
    name = lab_name(scenario_id)
    timings: dict[str, float] = {}
    started = time.monotonic()

    def lap(phase: str) -> None:
        nonlocal started
        timings[phase] = round(time.monotonic() - started, 1)
        started = time.monotonic()

    vms = tuple(f"{v.name}:agent={v.agent}" for v in spec.vms)
    roster = labs.up(docker_client, lab_spec(name, vms), lambda _: None)
    try:
        lap("up")
        if spec.warmup_backup:
            warm = run_backup(roster, vm)
            assert warm["status"] == "Completed", warm
            lap("warmup")
        for fault in spec.faults:
            target = FaultTarget(docker_client, roster, fault.vm, dict(fault.params))
            fault_by_id(fault.fault).inject(target)
        lap("inject")

        failed = run_backup(roster, vm)
        lap("backup_fails")
        assert failed["status"] == "Failed", failed
        assert failed["error_code"] == spec.expect.backup_error, failed
        assert failed["seconds"] <= spec.limits.backup_seconds, failed
        after_failure(scenario_id, roster, vm)

        outcome = run_steps(
            scenario.steps, step_place(docker_client, roster, scenario, snaplab_on_path)
        )
        lap("runbook")
        transcript = outcome.transcript(scenario.runbook_ref)
        assert outcome.failed is None, f"{outcome.failed.failure()}\n{transcript}"  # type: ignore[union-attr]

        done = run_backup(roster, vm)
        lap("backup_completes")
        assert done["status"] == "Completed", done
        assert done["seconds"] <= spec.limits.backup_seconds, done
        after_runbook(scenario_id, roster, vm)
        print(f"\n{transcript}")
        print(
            f"\n{scenario_id}: failed with {failed['error_code']} in {failed['seconds']:.1f} s, "
            f"completed in {done['seconds']:.1f} s after the runbook; phases {timings}"
        )
    finally:
        labs.down(docker_client, name)
    assert firewall_rules_of(name) == [], "the lab's firewall rules outlived it"
    assert labs.lab_names(docker_client).count(name) == 0
