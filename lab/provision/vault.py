"""A lab's Recovery Services vault as the ``snaplab`` backup commands use it: through the
unmodified ``azure-mgmt-recoveryservicesbackup`` against the lab's ARM twin, as a script
would use Azure Backup.

"Backup now" is ``backups.trigger`` followed to its job the way ``az backup protection
backup-now`` does (the operation status names the job); jobs, recovery points and
policies are read from the vault; a policy's run time is set with
``protection_policies.create_or_update`` and a VM moved onto it by updating its
protected item. The platform's clock is read from ARM's ``Date`` header, so run times
given as ``+15m`` are on the lab's Azure clock, which runs fast.

Each command gets plain data back (the ``--json`` shapes in the README); errors are
:class:`lab.errors.BadInput` for what the user got wrong (an unknown VM, a run time or
policy the vault refuses) and :class:`lab.errors.PlatformError` otherwise.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import docker
from azure.core.exceptions import AzureError, HttpResponseError
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
from azure.mgmt.recoveryservicesbackup import models as m

from lab.azure_sdk import backup_client
from lab.errors import BadInput, PlatformError
from lab.platform.arm import naming
from lab.platform.backup.slots import HOST_SNAPSHOT_SLOTS
from lab.platform.roster import Roster
from lab.provision import lab as labs
from lab.provision.backups import check_vm

POLL_SECONDS = 0.5
TERMINAL = ("Completed", "Failed", "CompletedWithWarnings", "Cancelled")
RETENTION_DAYS = 30

_RUN_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_OFFSET = re.compile(r"^\+(\d+)([mh])$")


@dataclass
class LabVault:
    """The lab's vault, its SDK client and the names Azure Backup gives its VMs."""

    client: RecoveryServicesBackupClient
    roster: Roster

    @classmethod
    def of(cls, docker_client: docker.DockerClient, lab: str) -> LabVault:
        arm = labs.arm_endpoint(docker_client, lab)
        roster = labs.roster_of(docker_client, lab)
        return cls(backup_client(arm.url, arm.token, arm.subscription_id, arm.ca_file), roster)

    @property
    def name(self) -> str:
        return naming.vault_name(self.roster)

    @property
    def group(self) -> str:
        return self.roster.resource_group

    def item(self, vm: str) -> tuple[str, str, str]:
        check_vm(self.roster, vm)
        return (
            naming.BACKUP_FABRIC,
            naming.backup_container_name(self.roster, vm),
            naming.protected_item_name(self.roster, vm),
        )

    # ------------------------------------------------------------------ jobs

    def backup_now(self, vm: str) -> dict[str, Any]:
        """Trigger an on-demand backup; the job it started."""
        item = self.item(vm)
        headers: dict[str, str] = {}

        def keep(response: Any, body: Any, _: Any) -> None:
            headers.update(response.http_response.headers)

        with _sdk_errors(f"backup of {vm}"):
            self.client.backups.trigger(
                self.name,
                self.group,
                *item,
                m.BackupRequestResource(properties=m.IaasVMBackupRequest()),
                cls=keep,
            )
            op_id = headers["Azure-AsyncOperation"].split("?")[0].rsplit("/", 1)[-1]
            status = self.client.backup_operation_statuses.get(self.name, self.group, op_id)
            while status.status == "InProgress":
                time.sleep(POLL_SECONDS)
                status = self.client.backup_operation_statuses.get(self.name, self.group, op_id)
        properties = status.properties
        if status.status != "Succeeded" or not isinstance(
            properties, m.OperationStatusJobExtendedInfo
        ):
            error = status.error.message if status.error else status.status
            raise PlatformError(f"backup of {vm} was not started: {error}")
        return self.job(str(properties.job_id))

    def job(self, job_id: str) -> dict[str, Any]:
        with _sdk_errors(f"job {job_id}"):
            return job_json(self.client.job_details.get(self.name, self.group, job_id))

    def jobs(self, vm: str | None = None) -> list[dict[str, Any]]:
        """Backup jobs, newest first (only ``vm``'s when given)."""
        if vm is not None:
            check_vm(self.roster, vm)
        with _sdk_errors("backup jobs"):
            found = [job_json(j) for j in self.client.backup_jobs.list(self.name, self.group)]
        return [j for j in found if vm is None or j["vm"] == vm]

    def follow(
        self, job: dict[str, Any], report: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        """Poll a job until it ends, reporting each change."""
        last: dict[str, Any] | None = None
        while job["status"] not in TERMINAL:
            if job != last:
                report(job)
                last = job
            time.sleep(POLL_SECONDS)
            job = self.job(job["job_id"])
        return job

    def restore_points(self, vm: str) -> list[dict[str, Any]]:
        item = self.item(vm)
        with _sdk_errors(f"recovery points of {vm}"):
            points = list(self.client.recovery_points.list(self.name, self.group, *item))
        return [recovery_point_json(vm, p) for p in points]

    # ------------------------------------------------------------------ policies

    def policies(self) -> dict[str, Any]:
        """The Azure clock, and each policy with its run time, next run and VMs."""
        now = self.azure_now()
        with _sdk_errors("backup policies"):
            policies = list(self.client.backup_policies.list(self.name, self.group))
            items = list(self.client.backup_protected_items.list(self.name, self.group))
        members: dict[str, list[str]] = {}
        for item in items:
            props = item.properties
            if props is not None and props.policy_name:
                members.setdefault(props.policy_name.lower(), []).append(
                    str(props.get("friendlyName"))
                )
        return {
            "azure_now": _iso(now),
            "time_scale": self.roster.time_scale,
            "host_snapshot_slots": HOST_SNAPSHOT_SLOTS,
            "policies": [
                self._policy_json(p, members.get(str(p.name).lower(), []), now) for p in policies
            ],
        }

    def policy(self, name: str) -> dict[str, Any]:
        found = next((p for p in self.policies()["policies"] if p["name"] == name), None)
        if found is None:
            raise BadInput(f"lab {self.roster.lab!r} has no backup policy {name!r}")
        return dict(found)

    def set_policy(self, name: str, time_spec: str, vms: Sequence[str]) -> dict[str, Any]:
        """Create or change a daily policy, then put ``vms`` on it (in order)."""
        items = [(vm, self.item(vm)) for vm in vms]
        run_time = resolve_run_time(time_spec, self.azure_now())
        moment = datetime(2026, 1, 1, *run_time, tzinfo=UTC)
        body = m.ProtectionPolicyResource(
            properties=m.AzureIaaSVMProtectionPolicy(
                schedule_policy=m.SimpleSchedulePolicy(
                    schedule_run_frequency="Daily", schedule_run_times=[moment]
                ),
                retention_policy=m.LongTermRetentionPolicy(
                    daily_schedule=m.DailyRetentionSchedule(
                        retention_times=[moment],
                        retention_duration=m.RetentionDuration(
                            count=RETENTION_DAYS, duration_type="Days"
                        ),
                    )
                ),
                time_zone="UTC",
            )
        )
        with _sdk_errors(f"policy {name}", refused_is_bad_input=True):
            made = self.client.protection_policies.create_or_update(
                self.name, self.group, name, body
            )
            policy_id = str(made.id) if made is not None else ""
            for vm, item in items:
                self.client.protected_items.begin_create_or_update(
                    self.name,
                    self.group,
                    *item,
                    m.ProtectedItemResource(
                        properties=m.AzureIaaSComputeVMProtectedItem(
                            policy_id=policy_id,
                            source_resource_id=naming.vm_resource_id(self.roster, vm),
                        )
                    ),
                ).result()
        return self.policy(name)

    def wait_for_policy_runs(
        self,
        names: Sequence[str],
        report: Callable[[str], None],
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """Wait for each named policy's next scheduled run to start and every job it
        started to end; returns those jobs (oldest first), each with its ``policy``.

        The default timeout is the latest next run plus ten minutes of lab time, room for
        any job to reach the snapshot sub-task timeout and its vault transfer."""
        policies = [self.policy(name) for name in names]
        before = {job["job_id"] for job in self.jobs()}
        expected = {vm: p["name"] for p in policies for vm in p["vms"]}
        latest = max((float(p["next_run_in_lab_seconds"]) for p in policies), default=0.0)
        deadline = time.monotonic() + (timeout if timeout is not None else latest + 600.0)
        for policy in policies:
            report(policy_line(policy))
        while True:
            runs = [
                {**job, "policy": expected[job["vm"]]}
                for job in self.jobs()
                if job["job_id"] not in before
                and job["trigger"] == "Scheduled"
                and job["vm"] in expected
            ]
            started = {job["vm"] for job in runs}
            if started >= set(expected) and all(job["status"] in TERMINAL for job in runs):
                return sorted(runs, key=lambda job: str(job["started_at"]))
            if time.monotonic() > deadline:
                missing = ", ".join(
                    f"{vm} ({expected[vm]})" for vm in sorted(set(expected) - started)
                )
                raise PlatformError(
                    f"policies {', '.join(names)}: scheduled runs not finished in time"
                    + (f"; not started: {missing}" if missing else "")
                )
            time.sleep(POLL_SECONDS)

    def azure_now(self) -> datetime:
        """The platform's clock: ARM's ``Date`` header on a vault answer."""
        stamps: list[str] = []

        def keep(response: Any) -> None:
            stamps.append(response.http_response.headers.get("Date", ""))

        with _sdk_errors("the vault's clock"):
            list(self.client.backup_policies.list(self.name, self.group, raw_response_hook=keep))
        try:
            return parsedate_to_datetime(stamps[-1]).astimezone(UTC)
        except (IndexError, TypeError, ValueError) as exc:
            raise PlatformError("the vault's answer carries no Date") from exc

    def _policy_json(self, policy: Any, vms: list[str], now: datetime) -> dict[str, Any]:
        props = policy.properties
        schedule = props.schedule_policy if props is not None else None
        runs = schedule.schedule_run_times if schedule is not None else None
        next_run = _next_run(runs[0], now) if runs else None
        retention = None
        if props is not None and props.retention_policy is not None:
            daily = props.retention_policy.get("dailySchedule") or {}
            retention = (daily.get("retentionDuration") or {}).get("count")
        return {
            "name": policy.name,
            "schedule_run_time": f"{next_run:%H:%M}" if next_run else None,
            "vms": vms,
            "next_run": _iso(next_run) if next_run else None,
            "next_run_in_lab_seconds": round(
                (next_run - now).total_seconds() / self.roster.time_scale, 2
            )
            if next_run
            else None,
            "retention_days": retention,
        }


# ---------------------------------------------------------------------- shapes


def job_json(resource: m.JobResource) -> dict[str, Any]:
    """A job as ``snaplab jobs --json`` prints it (times and durations as Azure shows
    them, on the lab's Azure clock)."""
    props = resource.properties
    if not isinstance(props, m.AzureIaaSVMJob):
        raise PlatformError(f"job {resource.name} is not an Azure VM backup job")
    error = props.error_details[0] if props.error_details else None
    tasks = props.extended_info.tasks_list if props.extended_info else None
    return {
        "job_id": resource.name,
        "vm": props.entity_friendly_name,
        "status": props.status,
        "error_code": str(error.error_code) if error and error.error_code else None,
        "error_message": error.error_string if error else None,
        "recommendations": list(error.recommendations or []) if error else [],
        "subtasks": [
            {
                "name": t.task_id,
                "status": t.status,
                "seconds": _seconds(t.duration),
                "started_at": _iso(t.start_time) if t.start_time else None,
                "ended_at": _iso(t.end_time) if t.end_time else None,
            }
            for t in tasks or []
        ],
        "seconds": _seconds(props.duration),
        "started_at": _iso(props.start_time) if props.start_time else None,
        "ended_at": _iso(props.end_time) if props.end_time else None,
        "trigger": "OnDemand" if props.is_user_triggered else "Scheduled",
    }


def recovery_point_json(vm: str, resource: m.RecoveryPointResource) -> dict[str, Any]:
    props = resource.properties
    if not isinstance(props, m.IaasVMRecoveryPoint):
        raise PlatformError(f"recovery point {resource.name} is not an Azure VM's")
    disks = props.recovery_point_disk_configuration
    return {
        "id": resource.name,
        "vm": vm,
        "created_at": _iso(props.recovery_point_time) if props.recovery_point_time else None,
        "consistency": props.recovery_point_type,
        "tiers": [t.type for t in props.recovery_point_tier_details or []],
        "disks": disks.number_of_disks_included_in_backup if disks else None,
    }


def summary(job: dict[str, Any]) -> str:
    """One line per job, as the portal's Backup jobs blade lists them."""
    subtasks = ", ".join(
        f"{s['name']} {s['status']}" + (f" {_clock(s['seconds'])}" if s.get("started_at") else "")
        for s in job.get("subtasks", [])
    )
    outcome = str(job["status"])
    if job.get("error_code"):
        outcome += f" {job['error_code']}: {job['error_message']}"
    took = f" in {_clock(job['seconds'])}" if job.get("seconds") is not None else ""
    return f"{job['job_id']}  {job['vm']}  {outcome}{took}  [{subtasks}]"


def policy_line(policy: dict[str, Any]) -> str:
    vms = ", ".join(policy["vms"]) or "no VMs"
    return (
        f"{policy['name']:<16} daily at {policy['schedule_run_time']} (Azure clock, UTC)  "
        f"next {policy['next_run']} (in {policy['next_run_in_lab_seconds']:.0f} lab s)  {vms}"
    )


def resolve_run_time(spec: str, azure_now: datetime) -> tuple[int, int]:
    """A daily run time from ``HH:MM`` or ``+<N>m`` / ``+<N>h`` (that long after the
    lab's Azure clock now, rounded up to the next full minute)."""
    text = spec.strip()
    exact = _RUN_TIME.match(text)
    if exact is not None:
        hour, minute = int(exact.group(1)), int(exact.group(2))
        if hour > 23 or minute > 59:
            raise BadInput(f"--time {spec!r}: not a time of day (00:00-23:59)")
        return hour, minute
    offset = _OFFSET.match(text)
    if offset is None:
        raise BadInput(f"--time {spec!r}: expected HH:MM or an offset such as +15m or +2h")
    amount, unit = int(offset.group(1)), offset.group(2)
    moment = azure_now + (timedelta(hours=amount) if unit == "h" else timedelta(minutes=amount))
    if moment.second or moment.microsecond:
        moment = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return moment.hour, moment.minute


def _next_run(run: datetime, now: datetime) -> datetime:
    candidate = now.astimezone(UTC).replace(
        hour=run.astimezone(UTC).hour, minute=run.astimezone(UTC).minute, second=0, microsecond=0
    )
    while candidate <= now:
        candidate += timedelta(days=1)
    return candidate


def _seconds(span: timedelta | None) -> float | None:
    return round(span.total_seconds(), 3) if span is not None else None


def _clock(seconds: float | None) -> str:
    """``1:35:00``: a duration as the portal's job list shows it."""
    if seconds is None:
        return "?"
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@contextmanager
def _sdk_errors(what: str, *, refused_is_bad_input: bool = False) -> Iterator[None]:
    """The SDK's errors as snaplab's: one line, the exit code the README promises."""
    try:
        yield
    except HttpResponseError as exc:
        message = exc.error.message if exc.error is not None and exc.error.message else str(exc)
        code = exc.error.code if exc.error is not None else None
        text = f"{what}: {f'({code}) ' if code else ''}{message}"
        if refused_is_bad_input and exc.status_code == 400:
            raise BadInput(text) from exc
        raise PlatformError(text) from exc
    except AzureError as exc:
        raise PlatformError(f"{what}: the lab's ARM twin did not answer: {exc}") from exc
