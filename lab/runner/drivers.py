"""What a scenario run asks of the outside world, and the real implementation of it.

Everything outside the process (Docker, the fabric, faults, the diagnosis) is reached
through :class:`Drivers`, so the engine is tested with fakes and run with
:class:`DockerDrivers`.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import docker

import lab
from lab.azcli.login import LabAccess
from lab.azcli.login import exports as az_exports
from lab.errors import SnaplabError
from lab.faults import FaultTarget, fault_by_id
from lab.platform.arm.managed_identity import PATH as IDENTITY_PATH
from lab.platform.roster import Roster
from lab.provision import backups, images
from lab.provision import lab as labs
from lab.provision.fabric_client import FabricClient
from lab.provision.lab import ArmEndpoint
from lab.provision.spec import guest_images, lab_spec, vm_option
from lab.provision.ssh_client import ensure_client, lab_targets
from lab.provision.trust import ca_bundle
from lab.runbook import RunbookResult, StepPlace, platform_env, run_steps
from lab.scenario import Scenario
from lab.scenario_schema import VmDecl

POLL_SECONDS = 0.5
GUEST_LOG_LINES = 100
Report = Callable[[str], None]


class Diagnosis(Protocol):
    """What the runner reads of :func:`lab.diagnosis.diagnose`'s answer."""

    @property
    def cause_ids(self) -> Iterable[str]: ...

    def to_json(self) -> Any: ...


class Drivers(Protocol):
    """Everything a scenario run asks of the outside world."""

    def prepare(self, vms: Sequence[VmDecl]) -> None:
        """Make what every lab of the run needs (images) once, before labs start."""

    def up(self, lab: str, vms: Sequence[VmDecl], time_scale: float) -> Roster:
        """Bring up a lab with these VMs, its Azure clock at ``time_scale``, and return
        when every agent is Ready."""

    def down(self, lab: str) -> None:
        """Remove the lab completely (a lab that is not there is not an error)."""

    def inject(self, roster: Roster, vm: str, fault: str, params: Mapping[str, Any]) -> None:
        """Apply one registered fault to one VM."""

    def backup(
        self, roster: Roster, vm: str, deadline_seconds: float, cancel: threading.Event
    ) -> dict[str, Any]:
        """Start a backup job and follow it; return it at its end, deadline or cancel."""

    def scheduled_backup(
        self,
        roster: Roster,
        vm: str,
        policy: str,
        seen: Collection[str],
        deadline_seconds: float,
        cancel: threading.Event,
    ) -> dict[str, Any]:
        """Wait for ``policy``'s schedule to start a job of ``vm`` that is not one of
        ``seen`` and follow it; ``{}`` if none started by the deadline or cancel."""

    def diagnose(self, roster: Roster, vm: str) -> Diagnosis:
        """Run the checks against one VM and name the causes found."""

    def run_runbook(
        self, roster: Roster, scenario: Scenario, cancel: threading.Event
    ) -> RunbookResult:
        """Execute the scenario's runbook steps in its lab."""

    def guest_logs(self, roster: Roster, vm: str) -> dict[str, str]:
        """The tails of the guest's agent and extension logs."""

    def versions(self) -> dict[str, str]:
        """Versions of outside components worth recording in the journal."""


class DockerDrivers:
    """The real collaborators: Docker labs, the fabric's backup service, the fault
    registry, :mod:`lab.diagnosis`, and runbook guest steps run over SSH."""

    def __init__(
        self,
        client: docker.DockerClient,
        report: Report = lambda _: None,
        image_source: docker.DockerClient | None = None,
    ) -> None:
        self.client = client
        self.report = report
        # Another engine of the machine: images are built there once and copied here.
        self.image_source = image_source

    def prepare(self, vms: Sequence[VmDecl]) -> None:
        ensure_client()  # guest steps go over SSH
        recipes = images.all_recipes(*guest_images(vms))
        if self.image_source is not None:
            from lab.provision.image_copy import copy_images

            tags = [images.ensure_image(self.image_source, r, self.report) for r in recipes]
            copy_images(self.image_source, self.client, tags, self.report)
        for recipe in recipes:
            images.ensure_image(self.client, recipe, self.report)

    def up(self, lab: str, vms: Sequence[VmDecl], time_scale: float) -> Roster:
        spec = lab_spec(
            lab, tuple(vm_option(vm.name, vm.agent, vm.guest) for vm in vms), time_scale
        )
        return labs.up(self.client, spec, lambda _: None)

    def down(self, lab: str) -> None:
        labs.down(self.client, lab)

    def inject(self, roster: Roster, vm: str, fault: str, params: Mapping[str, Any]) -> None:
        fault_by_id(fault).inject(FaultTarget(self.client, roster, vm, dict(params)))

    def backup(
        self, roster: Roster, vm: str, deadline_seconds: float, cancel: threading.Event
    ) -> dict[str, Any]:
        job = backups.current_or_start(roster, vm)
        return _follow(FabricClient(roster.fabric_ip), job, deadline_seconds, cancel)

    def scheduled_backup(
        self,
        roster: Roster,
        vm: str,
        policy: str,
        seen: Collection[str],
        deadline_seconds: float,
        cancel: threading.Event,
    ) -> dict[str, Any]:
        fabric = FabricClient(roster.fabric_ip)
        deadline = time.monotonic() + deadline_seconds
        while not cancel.is_set() and time.monotonic() < deadline:
            started = [
                job
                for job in fabric.jobs(vm)
                if job["job_id"] not in seen
                and job.get("trigger") == "Scheduled"
                and job.get("policy") == policy
            ]
            if started:
                job = min(started, key=lambda j: str(j.get("started_at")))
                return _follow(fabric, job, deadline - time.monotonic(), cancel)
            time.sleep(POLL_SECONDS)
        return {}

    def diagnose(self, roster: Roster, vm: str) -> Diagnosis:
        # Imported by name: the diagnosis package is developed beside the runner, and a
        # run without it should fail its diagnose phase, not every command at import.
        module = importlib.import_module("lab.diagnosis")
        found: Diagnosis = module.diagnose(self.client, roster, vm)
        return found

    def run_runbook(
        self, roster: Roster, scenario: Scenario, cancel: threading.Event
    ) -> RunbookResult:
        arm = labs.arm_endpoint(self.client, roster.lab)
        place = StepPlace(
            guests=lab_targets(roster),
            default_vm=scenario.primary_vm,
            platform_env=platform_env(env_exports(arm), roster.lab, scenario.primary_vm),
            cwd=repo_root(),
        )
        return run_steps(scenario.steps, place, cancel=cancel)

    def guest_logs(self, roster: Roster, vm: str) -> dict[str, str]:
        target = FaultTarget(self.client, roster, vm)
        scripts = {
            "waagent.log": f"tail -n {GUEST_LOG_LINES} /var/log/waagent.log",
            "extension.log": "shopt -s globstar nullglob; "
            "for f in /var/log/azure/**/extension.log; "
            f'do echo "== $f"; tail -n {GUEST_LOG_LINES} "$f"; done',
            # Debian/Ubuntu name the agent's unit walinuxagent, RHEL/SUSE waagent.
            "journalctl -u walinuxagent": "journalctl -u walinuxagent -u waagent --no-pager "
            f"-n {GUEST_LOG_LINES}",
        }
        logs = {}
        for name, script in scripts.items():
            try:
                logs[name] = target.run(script + " 2>&1 || true", timeout=30)
            except SnaplabError as exc:
                logs[name] = f"could not read: {exc}"
        return logs

    def versions(self) -> dict[str, str]:
        try:
            return {"docker": str(self.client.version().get("Version", "unknown"))}
        except Exception:
            return {"docker": "unknown"}


def _follow(
    fabric: FabricClient, job: dict[str, Any], seconds: float, cancel: threading.Event
) -> dict[str, Any]:
    """Poll the job until it ends, the time is up or the run is cancelled."""
    deadline = time.monotonic() + seconds
    while job["status"] not in backups.TERMINAL:
        if cancel.is_set() or time.monotonic() > deadline:
            break
        time.sleep(POLL_SECONDS)
        job = fabric.job(job["job_id"])
    return job


def env_exports(arm: ArmEndpoint) -> dict[str, str]:
    """What ``snaplab env`` exports: the Azure SDK pointed at the lab's ARM twin.

    Azure's own names where Azure has them: ``IDENTITY_ENDPOINT``/``IDENTITY_HEADER`` (a
    managed identity, which ``DefaultAzureCredential`` and ``az login --identity`` find),
    ``ARM_ENDPOINT`` (Resource Manager's URL, as Azure Stack Hub's SDK samples name it),
    ``AZURE_SUBSCRIPTION_ID`` and ``AZURE_RESOURCE_GROUP``, the public roots plus the lab
    CA through ``REQUESTS_CA_BUNDLE``. The ``SNAPLAB_*`` names stay for scripts written
    before. When the Azure CLI is installed, ``az``'s too (:mod:`lab.azcli.login`: the
    lab's logged-in config dir, and ``az`` on ``PATH``).
    """
    bundle = str(ca_bundle(arm.lab, Path(arm.ca_file)))
    exports = {
        "ARM_ENDPOINT": arm.url,
        "IDENTITY_ENDPOINT": f"{arm.url}{IDENTITY_PATH}",
        "IDENTITY_HEADER": arm.token,
        "AZURE_SUBSCRIPTION_ID": arm.subscription_id,
        "AZURE_RESOURCE_GROUP": arm.resource_group,
        "SNAPLAB_ARM_ENDPOINT": arm.url,
        "SNAPLAB_RESOURCE_GROUP": arm.resource_group,
        "SNAPLAB_ARM_TOKEN": arm.token,
        "REQUESTS_CA_BUNDLE": bundle,
        "SSL_CERT_FILE": bundle,
    }
    identity = (exports["IDENTITY_ENDPOINT"], arm.token)
    exports.update(az_exports(LabAccess(arm.lab, arm.url, *identity, Path(bundle))))
    return exports


def repo_root() -> Path:
    """Where platform steps run: the checkout that holds the package and scenarios/."""
    return Path(lab.__file__).resolve().parent.parent
