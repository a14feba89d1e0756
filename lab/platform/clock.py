"""Time as the fabric sees it, behind a protocol so it can be injected.

Whether a guest's agent is ``Ready`` depends on how long ago it last reported, so
every age the fabric computes reads an injectable :class:`Clock`: tests hand in a fake
one and age a report without sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Time as the fabric sees it: monotonic for ages, wall clock for timestamps."""

    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)
