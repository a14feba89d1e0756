"""schedule-storm: every VM of the lab on one backup policy, all starting at once.

A customer puts all of a cloud service's VMs on one policy, so their scheduled backups
start together, and the host takes at most 4 snapshots at a time: the rest queue for a
slot while their snapshot sub-task timeout runs. The fault is that configuration, made
through the platform (as in the portal): one policy whose daily run time is a few Azure
minutes from now, with every VM of the lab on it and the fault's own VM last (the VM
the case is about is one of those that have to wait). It returns once the schedule has
started that VM's job, so what follows sees the storm in progress.

Params: ``policy`` (default ``DailyPolicy``), ``lead_minutes`` (Azure minutes until the
run, default 10).
"""

from __future__ import annotations

import time

from lab.errors import PlatformError
from lab.faults import register
from lab.faults.base import FaultError, FaultTarget
from lab.provision.backups import resolve_run_time
from lab.provision.fabric_client import FabricClient

DEFAULT_POLICY = "DailyPolicy"
DEFAULT_LEAD_MINUTES = 10
START_MARGIN_SECONDS = 30.0


class ScheduleStorm:
    id = "schedule-storm"
    summary = "every VM on one backup policy with one run time: more snapshots than the host's 4"

    def inject(self, target: FaultTarget) -> None:
        vm = target.guest.name
        policy = str(target.params.get("policy", DEFAULT_POLICY))
        lead = int(target.params.get("lead_minutes", DEFAULT_LEAD_MINUTES))
        members = [g.name for g in target.roster.guests if g.name != vm] + [vm]
        fabric = FabricClient(target.roster.fabric_ip)
        try:
            earlier = {job["job_id"] for job in fabric.jobs(vm)}
            run_time = resolve_run_time(f"+{lead}m", str(fabric.policies()["azure_now"]))
            view = fabric.set_policy(policy, run_time)
            for member in members:
                fabric.protect(member, policy)
            due_in = float(view["next_run_in_lab_seconds"])
            self._wait_for_run(fabric, vm, policy, due_in, earlier)
        except PlatformError as exc:
            raise FaultError(f"{vm}: cannot set up policy {policy}: {exc}") from exc

    @staticmethod
    def _wait_for_run(
        fabric: FabricClient, vm: str, policy: str, due_in: float, earlier: set[str]
    ) -> None:
        """Until the schedule has started a new job of ``vm`` (it may be queued)."""
        deadline = time.monotonic() + max(due_in, 0.0) + START_MARGIN_SECONDS
        while time.monotonic() < deadline:
            if any(
                job["job_id"] not in earlier
                and job.get("trigger") == "Scheduled"
                and job.get("policy") == policy
                for job in fabric.jobs(vm)
            ):
                return
            time.sleep(0.2)
        raise FaultError(f"{vm}: policy {policy} did not start a scheduled job in time")


FAULT = register(ScheduleStorm())
