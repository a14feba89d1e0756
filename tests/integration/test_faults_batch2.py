"""Real labs: stale-agent, blocked-egress-proxy and dhcp-disabled, fault to fix.

For each scenario: a lab with the scenario's VMs, its fault injected, a backup that
fails with the scenario's code, the runbook's executable steps run as the runner runs
them (in the guest, or on the platform with the lab's ``snaplab env``), and a backup
that completes. The diagnosis phase is the runner's; these tests prove the mechanism
and the fix, and what the lab's infrastructure (mirror, proxy, DNS, redeploy) does. That
each runbook needs its fix is the runner's ``without-fix`` variant (test_catalog.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker
import pytest

from lab.faults import FaultTarget, fault_by_id
from lab.platform.redeploy import new_host_address
from lab.platform.roster import Roster
from lab.provision import backups
from lab.provision import lab as labs
from lab.provision.fabric_client import FabricClient
from lab.provision.spec import lab_spec
from lab.provision.ssh_client import lab_targets
from lab.runbook import RunbookResult, StepPlace, platform_env, run_steps
from lab.runner import env_exports, repo_root
from lab.scenario import Scenario, load_scenario

pytestmark = pytest.mark.integration

PREFIX = f"fb{os.getpid() % 10000}"
# A step that waits longer than this is stuck (the slowest takes about 10 s).
STEP_TIMEOUT = 120.0


@dataclass(frozen=True)
class Drill:
    """A scenario's lab: the Docker client, the scenario and the lab's roster."""

    client: docker.DockerClient
    scenario: Scenario
    roster: Roster

    @property
    def vm(self) -> str:
        return self.scenario.primary_vm

    def guest(self) -> FaultTarget:
        """The primary VM, reached as root at its console (``docker exec``)."""
        return FaultTarget(self.client, self.roster, self.vm)

    def backup(self) -> dict[str, Any]:
        limit = self.scenario.spec.limits.backup_seconds
        started = time.monotonic()
        job = backups.follow(self.roster, backups.start(self.roster, self.vm), lambda _: None)
        assert time.monotonic() - started < limit, f"backup took longer than {limit} s"
        return job

    def inject(self) -> None:
        for fault in self.scenario.spec.faults:
            target = FaultTarget(self.client, self.roster, fault.vm, dict(fault.params))
            fault_by_id(fault.fault).inject(target)

    def run_runbook(self) -> RunbookResult:
        """The runbook's steps as the runner runs them."""
        arm = labs.arm_endpoint(self.client, self.roster.lab)
        place = StepPlace(
            guests=lab_targets(self.roster),
            default_vm=self.vm,
            platform_env=platform_env(env_exports(arm), self.roster.lab, self.vm),
            cwd=repo_root(),
        )
        return run_steps(self.scenario.steps, place, timeout=STEP_TIMEOUT)

    def fail_backup(self) -> None:
        """Inject the scenario's faults and see the backup fail with its code."""
        if self.scenario.spec.warmup_backup:
            assert self.backup()["status"] == "Completed"
        self.inject()
        failed = self.backup()
        assert failed["status"] == "Failed"
        assert failed["error_code"] == self.scenario.spec.expect.backup_error, failed

    def fault_then_fix(self) -> None:
        """warm-up (if asked) -> inject -> failing backup -> runbook -> completed backup."""
        self.fail_backup()
        result = self.run_runbook()
        failed = result.failed
        assert failed is None, f"{failed.failure()}\n{result.transcript(self.scenario.id)}"
        completed = self.backup()
        assert completed["status"] == "Completed", completed


@pytest.fixture
def drill(docker_client: docker.DockerClient, request: pytest.FixtureRequest) -> Iterator[Drill]:
    """The scenario's lab, up and Ready; always removed afterwards."""
    scenario = load_scenario(request.param)
    name = f"{PREFIX}-{scenario.id.split('-')[0][:6]}"
    vms = tuple(f"{vm.name}:agent={vm.agent}" for vm in scenario.spec.vms)
    try:
        roster = labs.up(docker_client, lab_spec(name, vms), lambda _: None)
        yield Drill(docker_client, scenario, roster)
    finally:
        labs.down(docker_client, name)


@pytest.mark.parametrize("drill", ["stale-agent"], indirect=True)
def test_stale_agent(drill: Drill) -> None:
    guest = drill.guest()
    sources = guest.run("cat /etc/apt/sources.list")
    assert "http://debian-mirror.snaplab.internal:8081/debian bookworm main" in sources

    drill.fault_then_fix()

    assert guest.run("waagent --version").startswith("WALinuxAgent-2.7.3.0 ")
    assert guest.run("systemctl show -p Restart --value walinuxagent").strip() == "always"
    conf = guest.run("cat /etc/waagent.conf")
    assert "# ---- lab changes (snaplab) ----" in conf  # the VM's own config was kept
    assert "\nAutoUpdate.Enabled=n\n" in conf


@pytest.mark.parametrize("drill", ["dhcp-disabled"], indirect=True)
def test_dhcp_disabled(drill: Drill) -> None:
    guest = drill.guest()
    roster = drill.roster

    drill.fault_then_fix()

    new_address = new_host_address(roster.subnet)
    assert guest.run("cat /var/lib/waagent/WireServerEndpoint").strip() == new_address
    assert "inet dhcp" in guest.run("cat /etc/network/interfaces.d/eth0")
    # The redeploy is undone, in this lab only, through the same control route.
    undone = FabricClient(roster.fabric_ip).undo_redeploy(drill.vm)
    assert undone["wireserver_ip"] == roster.fabric_ip


@pytest.mark.parametrize("drill", ["blocked-egress-proxy"], indirect=True)
def test_blocked_egress_proxy(drill: Drill) -> None:
    guest = drill.guest()

    drill.fault_then_fix()

    conf = guest.run("grep -E '^HttpProxy\\.(Host|Port)=' /etc/waagent.conf")
    assert "HttpProxy.Host=proxy.snaplab.internal" in conf
    log = guest.run(
        "cat /var/log/azure/Microsoft.Azure.RecoveryServices.VMSnapshotLinux/extension.log"
    )
    assert "storage calls through HttpProxy http://proxy.snaplab.internal:3128," in log
    # Storage itself stays closed to the VM: the backup went through the proxy.
    direct = guest.run(
        f"curl -s -o /dev/null -m 5 -w '%{{http_code}}' http://{drill.roster.storage_ip}:10000/"
        " || true"
    )
    assert direct.strip() in ("000", "")
