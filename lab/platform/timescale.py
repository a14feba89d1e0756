"""Azure durations, written once in Azure units, and their lab equivalents.

A lab runs Azure's clock faster by one factor (``SNAPLAB_TIME_SCALE``, default 240):
a 95-minute snapshot sub-task timeout lasts about 24 s in the lab. Some guest-side periods cannot be
scaled (the real agent reports every few seconds whatever we do), so every lab
duration has a floor that keeps it longer than the physical cycle it observes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

# 240 makes a timed-out backup job end in well under a minute (95 min / 240 = 24 s)
# while the floors below keep every window longer than the agent's own cycles.
DEFAULT_TIME_SCALE = 240.0


@dataclass(frozen=True)
class AzureDuration:
    """A duration as Azure defines it, plus the shortest lab time that stays meaningful."""

    azure: timedelta
    floor_seconds: float = 0.0

    def lab_seconds(self, scale: float | None = None) -> float:
        factor = time_scale() if scale is None else scale
        if factor <= 0:
            raise ValueError(f"time scale must be positive, got {factor}")
        return max(self.azure.total_seconds() / factor, self.floor_seconds)


def time_scale() -> float:
    """The lab's time-scale factor from the environment (1 = Azure's own clock)."""
    raw = os.environ.get("SNAPLAB_TIME_SCALE", "")
    if not raw:
        return DEFAULT_TIME_SCALE
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"SNAPLAB_TIME_SCALE must be a number, got {raw!r}") from exc
    if value <= 0:
        raise ValueError(f"SNAPLAB_TIME_SCALE must be positive, got {raw!r}")
    return value


# The platform marks the guest agent "Not Ready" when its status blob has not been
# updated for this long ("VM status blob is found but not updated for 10 minutes ...").
# Floor: three of the agent's 6-second status cycles, so one late upload is tolerated.
AGENT_STATUS_STALE_AFTER = AzureDuration(timedelta(minutes=10), floor_seconds=20.0)

# Backup refuses to start (UserErrorGuestAgentStatusUnavailable) when the agent is not
# Ready; "not Ready" is the same staleness rule the instance view applies.
BACKUP_PRECHECK_STALE_AFTER = AGENT_STATUS_STALE_AFTER

# How long the backup service waits for the extension's terminal status before failing
# with GuestAgentSnapshotTaskStatusError. Microsoft publishes no number; a real failure
# report shows the timeout after about 1 h 35 min "in progress". Floor: a goal-state
# poll, a first install (manifest + zip download), enable and two status uploads.
SNAPSHOT_SUBTASK_TIMEOUT = AzureDuration(timedelta(minutes=95), floor_seconds=20.0)

# Lifetime of the SAS URLs a backup hands out (disks, status blob, snapshot reads for the
# vault transfer). It must outlive the extension's own 140-minute "too late" rule so an
# on-time snapshot never fails on an expired SAS; floor: a slow snapshot plus transfer.
BACKUP_SAS_EXPIRY = AzureDuration(timedelta(minutes=150), floor_seconds=60.0)

# The host's own work for one VM snapshot once the snapshot is taken (registering the
# instant restore point of the VM's disks), done while the VM holds one of the host's
# snapshot slots (at most 4 at a time, see lab.platform.backup.slots). Microsoft
# publishes no number; Take Snapshot sub-tasks of small VMs commonly last tens of
# minutes. 25 Azure minutes keeps a healthy lab job well inside the sub-task timeout
# (the agent's round trip, ~3-13 lab seconds, plus 6.25 s at 240) while a VM queued
# behind four others (twice that) runs past it, as on a host asked for too many
# snapshots at once. No floor: it observes no guest cycle.
HOST_SNAPSHOT_WORK = AzureDuration(timedelta(minutes=25))
