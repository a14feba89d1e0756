"""The fabric's backup service as the twin's Recovery Services provider reads and drives it.

The backup service runs in the fabric (:mod:`lab.platform.backup`): it runs the jobs,
keeps the restore points and the policies, and starts the scheduled runs. The twin only
shows them in Azure's shapes and passes on what a client asks for ("Backup now", a new
run time, a VM moved to another policy), so everything here goes through the fabric's
control API (``/control/v1/jobs``, ``/vms/<vm>/backups``, ``/vms/<vm>/restore-points``,
``/policies``, ``/vms/<vm>/policy``) and comes back as typed records.

:class:`BackupFabric` is the seam that keeps the provider testable without a lab;
:class:`HttpBackupFabric` is the real one, the twin's :class:`HttpFabricClient` with the
backup routes added.

Runs inside the twin's container on Debian's Python: stdlib only, and nothing from
``lab`` outside :mod:`lab.platform`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar
from urllib.parse import quote, urlencode

from lab.platform.arm.fabric import FabricError, HttpFabricClient

_T = TypeVar("_T")


@dataclass(frozen=True)
class FabricTask:
    """One sub-task of a job ("Take Snapshot", "Transfer data to vault")."""

    name: str
    status: str  # NotStarted, InProgress, Completed, Failed
    started_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True)
class FabricJob:
    """A backup job as the fabric keeps it; times on the lab's wall clock."""

    job_id: str
    vm: str
    status: str  # InProgress, Completed, Failed
    started_at: datetime
    ended_at: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None
    tasks: tuple[FabricTask, ...] = ()
    trigger: str = "OnDemand"  # or "Scheduled"
    policy: str | None = None


@dataclass(frozen=True)
class FabricRestorePoint:
    """A completed job's restore point: a snapshot of each disk and its vault copy."""

    id: str
    vm: str
    job_id: str
    created_at: datetime
    consistency: str  # ApplicationConsistent, FileSystemConsistent, CrashConsistent
    disks: tuple[str, ...] = ()


@dataclass(frozen=True)
class FabricPolicy:
    """A daily policy: its run time (``HH:MM``, UTC, the lab's Azure clock) and VMs."""

    name: str
    run_time: str
    vms: tuple[str, ...] = ()


@dataclass(frozen=True)
class FabricPolicies:
    """The policies and the Azure clock they run on (``azure_now`` read with them)."""

    azure_now: datetime
    time_scale: float
    policies: tuple[FabricPolicy, ...] = ()

    def named(self, name: str) -> FabricPolicy | None:
        wanted = name.lower()
        return next((p for p in self.policies if p.name.lower() == wanted), None)

    def of_vm(self, vm: str) -> FabricPolicy | None:
        return next((p for p in self.policies if vm in p.vms), None)


class BackupFabric(Protocol):
    """What the Recovery Services provider needs of the fabric's backup service. Every
    method raises :class:`FabricError` when the fabric does not answer sensibly."""

    def backup_jobs(self, vm: str | None = None) -> list[FabricJob]:
        """Jobs, newest first (only ``vm``'s when given)."""
        ...

    def backup_job(self, job_id: str) -> FabricJob | None: ...

    def start_backup(self, vm: str) -> FabricJob:
        """An on-demand job ("Backup now"); a pre-check's refusal is a Failed job."""
        ...

    def restore_points(self, vm: str) -> list[FabricRestorePoint]: ...

    def backup_policies(self) -> FabricPolicies: ...

    def set_backup_policy(self, name: str, run_time: str) -> None:
        """Create a policy or change its daily run time (``HH:MM``)."""
        ...

    def protect(self, vm: str, policy: str) -> None:
        """Put ``vm`` on ``policy`` (off any other)."""
        ...


class HttpBackupFabric(HttpFabricClient):
    """:class:`BackupFabric` (and the twin's other fabric calls) over HTTP."""

    def backup_jobs(self, vm: str | None = None) -> list[FabricJob]:
        query = f"?{urlencode({'vm': vm})}" if vm is not None else ""
        text = self._text("GET", f"/control/v1/jobs{query}")
        return _parsed(lambda doc: [parse_job(j) for j in _list(doc, "jobs")], text, "jobs")

    def backup_job(self, job_id: str) -> FabricJob | None:
        text = self._request("GET", f"/control/v1/jobs/{_q(job_id)}")
        return None if text is None else _parsed(parse_job, text, "job")

    def start_backup(self, vm: str) -> FabricJob:
        text = self._text("POST", f"/control/v1/vms/{_q(vm)}/backups", b"{}")
        return _parsed(parse_job, text, "new job")

    def restore_points(self, vm: str) -> list[FabricRestorePoint]:
        text = self._text("GET", f"/control/v1/vms/{_q(vm)}/restore-points")
        return _parsed(
            lambda doc: [parse_restore_point(p) for p in _list(doc, "restore_points")],
            text,
            "restore points",
        )

    def backup_policies(self) -> FabricPolicies:
        return _parsed(parse_policies, self._text("GET", "/control/v1/policies"), "policies")

    def set_backup_policy(self, name: str, run_time: str) -> None:
        body = json.dumps({"schedule_run_time": run_time}).encode()
        self._text("PUT", f"/control/v1/policies/{_q(name)}", body)

    def protect(self, vm: str, policy: str) -> None:
        body = json.dumps({"policy": policy}).encode()
        self._text("PUT", f"/control/v1/vms/{_q(vm)}/policy", body)

    def _text(self, method: str, path: str, payload: bytes | None = None) -> str:
        text = self._request(method, path, payload)
        if text is None:
            raise FabricError(f"{method} {path}: the fabric has no such resource")
        return text


# ---------------------------------------------------------------------- parsing


def parse_job(raw: object) -> FabricJob:
    """One job of the control API (:meth:`lab.platform.backup.job.Job.to_json`)."""
    doc = _object(raw, "job")
    started = _time(doc.get("started_at"))
    if started is None:
        raise ValueError("job has no started_at")
    return FabricJob(
        job_id=_text(doc, "job_id"),
        vm=_text(doc, "vm"),
        status=_text(doc, "status"),
        started_at=started,
        ended_at=_time(doc.get("ended_at")),
        error_code=_optional_text(doc, "error_code"),
        error_message=_optional_text(doc, "error_message"),
        tasks=tuple(_task(t) for t in _list(doc, "subtasks")),
        trigger=_optional_text(doc, "trigger") or "OnDemand",
        policy=_optional_text(doc, "policy"),
    )


def _task(raw: object) -> FabricTask:
    doc = _object(raw, "sub-task")
    return FabricTask(
        name=_text(doc, "name"),
        status=_text(doc, "status"),
        started_at=_time(doc.get("started_at")),
        ended_at=_time(doc.get("ended_at")),
    )


def parse_restore_point(raw: object) -> FabricRestorePoint:
    doc = _object(raw, "restore point")
    created = _time(doc.get("created_at"))
    if created is None:
        raise ValueError("restore point has no created_at")
    return FabricRestorePoint(
        id=_text(doc, "id"),
        vm=_text(doc, "vm"),
        job_id=_text(doc, "job_id"),
        created_at=created,
        consistency=_text(doc, "consistency"),
        disks=tuple(_text(_object(d, "disk"), "name") for d in _list(doc, "disks")),
    )


def parse_policies(raw: object) -> FabricPolicies:
    doc = _object(raw, "policies")
    now = _time(doc.get("azure_now"))
    scale = doc.get("time_scale")
    if now is None or isinstance(scale, bool) or not isinstance(scale, int | float) or scale <= 0:
        raise ValueError("policies carry no Azure clock (azure_now, time_scale)")
    return FabricPolicies(
        azure_now=now,
        time_scale=float(scale),
        policies=tuple(
            FabricPolicy(
                name=_text(p, "name"),
                run_time=_text(p, "schedule_run_time"),
                vms=tuple(str(vm) for vm in _list(p, "vms")),
            )
            for p in (_object(item, "policy") for item in _list(doc, "policies"))
        ),
    )


def _parsed(parse: Callable[[object], _T], text: str, what: str) -> _T:
    try:
        return parse(json.loads(text))
    except ValueError as exc:  # JSONDecodeError is one
        raise FabricError(f"the fabric's {what} is not valid: {exc}") from exc


def _q(segment: str) -> str:
    return quote(segment, safe="")


def _object(raw: object, what: str) -> Mapping[str, object]:
    if not isinstance(raw, dict):
        raise ValueError(f"{what} is not a JSON object")
    return raw


def _list(doc: object, key: str) -> list[object]:
    value = _object(doc, "document").get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{key} is not a list")
    return value


def _text(doc: Mapping[str, object], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} is missing or not text")
    return value


def _optional_text(doc: Mapping[str, object], key: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} is not text")
    return value


def _time(value: object) -> datetime | None:
    """An ISO 8601 time of the control API (``...Z`` or with an offset), as UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r}")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
