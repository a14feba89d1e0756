"""The platform's opinion of a VM: what Azure would show in the instance view.

The agent status turns ``Not Ready`` when the status blob stops being refreshed, exactly
the condition behind "Could not communicate with the VM agent". The age of the last
report is read from an injectable :class:`~lab.platform.clock.Clock` so tests can age
a report without sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lab.platform.clock import Clock
from lab.platform.health_report import HealthReport
from lab.platform.roster import GuestEntry
from lab.platform.status_report import (
    ExtensionView,
    StatusReport,
    agent_status_view,
    extension_views,
    os_view,
)

AGENT_READY = "Ready"
AGENT_NOT_READY = "Not Ready"


def iso_utc(moment: datetime) -> str:
    """ISO-8601 UTC with a ``Z``, second precision, as Azure's instance view prints it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class GuestView:
    """The platform's opinion of a VM, the shape the control API serves."""

    name: str
    ip: str
    incarnation: str
    agent_version: str | None
    agent_status: str
    agent_message: str
    last_report: datetime | None
    report_age_seconds: float | None
    health_state: str | None
    health_last_report: datetime | None
    os: dict[str, str | None] | None
    extensions: tuple[ExtensionView, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ip": self.ip,
            "incarnation": self.incarnation,
            "agent": {
                "version": self.agent_version,
                "status": self.agent_status,
                "message": self.agent_message,
                "last_report": iso_utc(self.last_report) if self.last_report else None,
                "report_age_seconds": (
                    round(self.report_age_seconds, 3)
                    if self.report_age_seconds is not None
                    else None
                ),
            },
            "health": {
                "state": self.health_state,
                "last_report": iso_utc(self.health_last_report)
                if self.health_last_report
                else None,
            },
            "os": self.os,
            "extensions": [e.to_json() for e in self.extensions],
        }


def guest_view(
    entry: GuestEntry,
    incarnation: str,
    status: StatusReport | None,
    health: HealthReport | None,
    *,
    clock: Clock,
    stale_after: float,
) -> GuestView:
    """The instance-view opinion of one VM from its latest reports, as of ``clock``."""
    if status is None:
        return GuestView(
            name=entry.name,
            ip=entry.ip,
            incarnation=incarnation,
            agent_version=None,
            agent_status=AGENT_NOT_READY,
            agent_message="VM status blob is not found: the VM agent has not reported yet.",
            last_report=None,
            report_age_seconds=None,
            health_state=health.state if health else None,
            health_last_report=health.received_at if health else None,
            os=None,
        )
    age = max(0.0, clock.monotonic() - status.received_monotonic)
    agent = agent_status_view(status.parsed)
    reported = agent.status
    message = agent.message or ""
    if age >= stale_after:
        agent_status = AGENT_NOT_READY
        message = (
            f"VM status blob is found but not updated for {age:.0f} lab seconds "
            f"(stale after {stale_after:g}). The VM agent may be stopped or cannot "
            "reach the platform."
        )
    elif reported == AGENT_READY:
        agent_status = AGENT_READY
    else:
        agent_status = AGENT_NOT_READY
        message = message or f"VM agent reported status {reported!r}"
    return GuestView(
        name=entry.name,
        ip=entry.ip,
        incarnation=incarnation,
        agent_version=agent.version,
        agent_status=agent_status,
        agent_message=message,
        last_report=status.received_at,
        report_age_seconds=age,
        health_state=health.state if health else None,
        health_last_report=health.received_at if health else None,
        os=os_view(status.parsed),
        extensions=extension_views(status.parsed),
    )
