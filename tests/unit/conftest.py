"""Unit-test fixtures shared by every test module."""

from __future__ import annotations

import pytest

from checks import in_motion
from checks.fakes import FakeClock


@pytest.fixture(autouse=True)
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Checks that watch a state in motion wait on this clock: instantly, never for real."""
    clock = FakeClock()
    monkeypatch.setattr(in_motion, "clock", clock.clock)
    monkeypatch.setattr(in_motion, "pause", clock.pause)
    return clock
