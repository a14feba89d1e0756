"""Azure durations, written once in Azure units, and their lab equivalents.

A lab runs Azure's clock faster by one factor (``SNAPLAB_TIME_SCALE``, default 60):
a 10-minute Azure window lasts 10 s in the lab. Some guest-side periods cannot be
scaled (the real agent reports every few seconds whatever we do), so every lab
duration has a floor that keeps it longer than the physical cycle it observes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

DEFAULT_TIME_SCALE = 60.0


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
