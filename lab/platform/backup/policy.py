"""Backup policies: a daily schedule run time, on an Azure clock that runs scaled.

An Azure VM backup policy says when its VMs are backed up (here: daily, at a UTC time
of day, which is what Azure's standard policy offers) and each protected VM belongs to
exactly one policy. At its run time the service starts a scheduled job for every VM of
the policy at once, which is how many VMs on one policy end up asking one host for
their snapshots together.

Schedules are written in Azure time. The lab's :class:`AzureClock` runs ``time_scale``
times faster than the lab's own clock from the moment the service starts, so at 240 an
Azure day lasts 6 lab minutes and an Azure hour 15 lab seconds. Pure apart from the
clock it reads, which is injectable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lab.platform.clock import Clock

_RUN_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_POLICY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
DAY = timedelta(days=1)


class PolicyError(ValueError):
    """A policy or a run time Azure would not accept."""


def parse_run_time(text: str) -> tuple[int, int]:
    """``"HH:MM"`` (24-hour, UTC) as (hour, minute)."""
    match = _RUN_TIME.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise PolicyError(f"schedule run time must be HH:MM (00:00-23:59 UTC), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def check_policy_name(name: str) -> str:
    """Policy names as Azure allows them (letters first; letters, digits, - and _)."""
    if not isinstance(name, str) or not _POLICY_NAME.match(name):
        raise PolicyError(
            f"policy name must start with a letter and hold only letters, digits, '-' "
            f"and '_' (at most 64), got {name!r}"
        )
    return name


@dataclass(frozen=True)
class Policy:
    """A daily backup policy: its name and its schedule run time (UTC, Azure clock)."""

    name: str
    run_time: str  # "HH:MM"

    def __post_init__(self) -> None:
        check_policy_name(self.name)
        hour, minute = parse_run_time(self.run_time)
        object.__setattr__(self, "run_time", f"{hour:02d}:{minute:02d}")

    def next_run(self, after: datetime) -> datetime:
        """The first run strictly after ``after`` (an Azure-clock moment)."""
        hour, minute = parse_run_time(self.run_time)
        candidate = after.astimezone(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)
        while candidate <= after:
            candidate += DAY
        return candidate

    def runs_between(self, start: datetime, end: datetime) -> bool:
        """Whether a run falls in ``(start, end]``."""
        return end > start and self.next_run(start) <= end

    def to_record(self) -> dict[str, Any]:
        return {"name": self.name, "run_time": self.run_time}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Policy:
        return cls(name=str(record["name"]), run_time=str(record["run_time"]))


class AzureClock:
    """Azure time in a lab: starts at the lab's wall clock, runs ``scale`` times faster."""

    def __init__(self, clock: Clock, scale: float) -> None:
        if scale <= 0:
            raise ValueError(f"time scale must be positive, got {scale}")
        self.clock = clock
        self.scale = scale
        self._anchor_wall = clock.now().astimezone(UTC)
        self._anchor_mono = clock.monotonic()

    def now(self) -> datetime:
        elapsed = self.clock.monotonic() - self._anchor_mono
        return self._anchor_wall + timedelta(seconds=elapsed * self.scale)

    def lab_seconds_until(self, moment: datetime) -> float:
        """Lab seconds from now until an Azure-clock moment (negative if past)."""
        return (moment - self.now()).total_seconds() / self.scale


def iso_minute(moment: datetime) -> str:
    """An Azure-clock moment as the policy views show it: UTC to the second, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
