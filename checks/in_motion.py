"""How a check waits for a state in motion: observe it until it settles, within a window.

A handler being installed, an agent starting: a snapshot of either looks like a fault
(files missing, no process yet) while nothing is wrong. A check that judges such a state
does not sleep a fixed time; it looks again every :data:`POLL_SECONDS` and returns as
soon as the state settles, or when the state has been in motion longer than its window —
an Azure duration from the one table (:mod:`lab.platform.timescale`), scaled by the lab's
clock like everything else. Past its window, a state in motion is stuck, and that is
evidence.

The clock and the pause are module attributes so unit tests replace them (and move the
fake guest's state along while the check "waits").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from lab.platform.timescale import AzureDuration

T = TypeVar("T")
# One look per second: the agent's own cycles are 3-6 s, so a settled state is seen
# within a second of settling while a long wait costs one `docker exec` a second.
POLL_SECONDS = 1.0

clock: Callable[[], float] = time.monotonic
pause: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class Window:
    """How long a state may be in motion before it counts as stuck, and why."""

    what: str  # "the agent's install of the handler"
    duration: AzureDuration

    def seconds(self, scale: float) -> float:
        return self.duration.lab_seconds(scale)

    def describe(self, scale: float) -> str:
        """``the agent's install of the handler may take 15 min on Azure's clock = ...``."""
        return f"{self.what} may take {self.duration.describe(scale)}"


@dataclass(frozen=True)
class Settled(Generic[T]):
    """The last observation and how long the check watched it move."""

    value: T
    waited: float
    moving: bool  # still in motion when the window ran out


def watch(
    observe: Callable[[], T],
    remaining: Callable[[T], float | None],
    limit: float,
) -> Settled[T]:
    """Observe until ``remaining(value)`` is None (settled), or until the state has spent
    its window (``remaining`` <= 0), or ``limit`` seconds have passed.

    ``remaining`` answers, for one observation, how much of its window the state has
    left — from the guest's own timestamps, so progress (a new state, a newer file)
    starts a new window — or None when the state is not in motion at all.
    """
    began = clock()
    value = observe()
    waited = 0.0  # only time spent waiting for motion counts, not the first look
    while True:
        left = remaining(value)
        if left is None:
            return Settled(value, waited, moving=False)
        if left <= 0 or waited >= limit:
            return Settled(value, waited, moving=True)
        pause(min(POLL_SECONDS, left, limit - waited))
        value = observe()
        waited = clock() - began
