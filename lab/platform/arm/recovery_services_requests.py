"""What clients of the twin's Recovery Services provider send, read and checked: the
body of a backup policy and the ``$filter`` of the list operations.

A body or filter the lab cannot honour is refused with ARM's 400 and a sentence that
says what it takes, never half-applied.

Runs inside the twin's container on Debian's Python: stdlib and Werkzeug only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from lab.platform.arm.conventions import ArmError, JsonObject
from lab.platform.arm.recovery_services_documents import (
    BACKUP_MANAGEMENT_TYPE,
    DEFAULT_RETENTION_DAYS,
    AzureTime,
)
from lab.platform.arm.recovery_services_fabric import FabricJob

# The time formats of backupJobs' $filter: az's, then ISO 8601.
FILTER_TIME_FORMATS = ("%Y-%m-%d %I:%M:%S %p", "%Y-%m-%d %H:%M:%S")
_FILTER_TERM = re.compile(r"^\s*(\w+)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)
JOB_FILTER_FIELDS = ("status", "operation", "backupmanagementtype", "starttime", "endtime")


def read_policy(properties: JsonObject) -> tuple[str, int]:
    """The run time (``HH:MM`` UTC) and daily retention count of a policy body."""

    def refuse(message: str) -> ArmError:
        return ArmError(400, "BadRequest", message)

    if properties.get("backupManagementType") != BACKUP_MANAGEMENT_TYPE:
        raise refuse(f"backupManagementType must be '{BACKUP_MANAGEMENT_TYPE}'.")
    zone = str(properties.get("timeZone") or "UTC")
    if zone.upper() not in ("UTC", "COORDINATED UNIVERSAL TIME"):
        raise refuse(f"The lab's policies run on UTC; timeZone {zone!r} is not supported.")
    schedule = properties.get("schedulePolicy")
    if (
        not isinstance(schedule, dict)
        or schedule.get("schedulePolicyType") != "SimpleSchedulePolicy"
    ):
        raise refuse("schedulePolicy must be a SimpleSchedulePolicy.")
    if str(schedule.get("scheduleRunFrequency", "")).lower() != "daily":
        raise refuse("The lab's policies run daily: scheduleRunFrequency must be 'Daily'.")
    times = schedule.get("scheduleRunTimes")
    if not isinstance(times, list) or len(times) != 1 or not isinstance(times[0], str):
        raise refuse("scheduleRunTimes must hold exactly one time.")
    try:
        moment = datetime.fromisoformat(times[0].replace("Z", "+00:00"))
    except ValueError as exc:
        raise refuse(f"scheduleRunTimes[0] is not a time: {times[0]!r}.") from exc
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    retention = DEFAULT_RETENTION_DAYS
    policy = properties.get("retentionPolicy")
    if isinstance(policy, dict):
        daily = policy.get("dailySchedule")
        duration = daily.get("retentionDuration") if isinstance(daily, dict) else None
        count = duration.get("count") if isinstance(duration, dict) else None
        if count is not None:
            if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 9999:
                raise refuse("retentionDuration.count must be a whole number of days, 1-9999.")
            retention = count
    return f"{moment.hour:02d}:{moment.minute:02d}", retention


def item_filter(text: str) -> bool:
    """Whether backupProtectedItems' ``$filter`` admits the lab's VMs (all AzureIaasVM)."""
    for field_name, value in _filter_terms(text):
        if field_name == "backupmanagementtype" and value.lower() != BACKUP_MANAGEMENT_TYPE.lower():
            return False
        if field_name == "itemtype" and value.lower() != "vm":
            return False
    return True


def policy_filter(text: str) -> bool:
    for field_name, value in _filter_terms(text):
        if field_name == "backupmanagementtype" and value.lower() != BACKUP_MANAGEMENT_TYPE.lower():
            return False
    return True


def job_filter(text: str, clock: AzureTime) -> Callable[[FabricJob], bool]:
    """backupJobs' ``$filter`` as a predicate on fabric jobs."""
    terms = _filter_terms(text)
    unknown = [name for name, _ in terms if name not in JOB_FILTER_FIELDS]
    if unknown:
        raise ArmError(
            400,
            "BadRequest",
            f"The lab's backupJobs $filter takes {', '.join(JOB_FILTER_FIELDS)}; not {unknown[0]}.",
        )
    wanted = dict(terms)
    start = _filter_time(wanted["starttime"]) if "starttime" in wanted else None
    end = _filter_time(wanted["endtime"]) if "endtime" in wanted else None

    def keep(job: FabricJob) -> bool:
        started = clock.at(job.started_at)
        return (
            wanted.get("status", job.status).lower() == job.status.lower()
            and wanted.get("operation", "Backup").lower() == "backup"
            and wanted.get("backupmanagementtype", BACKUP_MANAGEMENT_TYPE).lower()
            == BACKUP_MANAGEMENT_TYPE.lower()
            and (start is None or started >= start)
            and (end is None or started <= end)
        )

    return keep


def _filter_terms(text: str) -> list[tuple[str, str]]:
    """``a eq 'x' and b eq 'y'`` as [(a, x), (b, y)], names lower case; 400 otherwise."""
    if not text.strip():
        return []
    terms = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _FILTER_TERM.match(part)
        if match is None:
            raise ArmError(400, "BadRequest", f"The $filter term {part!r} is not 'name eq value'.")
        terms.append((match.group(1).lower(), match.group(2)))
    return terms


def _filter_time(text: str) -> datetime:
    for shape in FILTER_TIME_FORMATS:
        try:
            return datetime.strptime(text.strip(), shape).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ArmError(400, "BadRequest", f"The $filter time {text!r} is not a time.") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
