"""Time-scale arithmetic, as properties: every Azure duration maps to lab seconds by
one rule, so the backup timeouts and the agent staleness can never disagree."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.platform import timescale
from lab.platform.timescale import (
    AGENT_STATUS_STALE_AFTER,
    BACKUP_PRECHECK_STALE_AFTER,
    BACKUP_SAS_EXPIRY,
    DEFAULT_TIME_SCALE,
    SNAPSHOT_SUBTASK_TIMEOUT,
    AzureDuration,
    time_scale,
)

seconds = st.floats(min_value=0, max_value=30 * 86400, allow_nan=False)
floors = st.floats(min_value=0, max_value=3600, allow_nan=False)
scales = st.floats(min_value=1e-3, max_value=1e5, allow_nan=False)
CONSTANTS = [AGENT_STATUS_STALE_AFTER, SNAPSHOT_SUBTASK_TIMEOUT, BACKUP_SAS_EXPIRY]


def duration(azure_seconds: float, floor: float = 0.0) -> AzureDuration:
    return AzureDuration(timedelta(seconds=azure_seconds), floor_seconds=floor)


@given(seconds, seconds, floors, scales)
def test_monotonic_in_the_duration(a: float, b: float, floor: float, scale: float) -> None:
    short, long = sorted((a, b))
    assert duration(short, floor).lab_seconds(scale) <= duration(long, floor).lab_seconds(scale)


@given(seconds, floors, scales, scales)
def test_antitone_in_the_scale(azure: float, floor: float, s1: float, s2: float) -> None:
    slow, fast = sorted((s1, s2))
    d = duration(azure, floor)
    assert d.lab_seconds(fast) <= d.lab_seconds(slow)


@given(seconds, scales)
def test_inverse_in_the_scale_above_the_floor(azure: float, scale: float) -> None:
    d = duration(azure)
    exact = d.azure.total_seconds()
    assert d.lab_seconds(scale) * scale == pytest.approx(exact, rel=1e-9, abs=1e-9)


@given(seconds, floors, scales)
def test_never_below_the_floor_unless_azure_is(azure: float, floor: float, scale: float) -> None:
    d = duration(azure, floor)  # timedelta keeps microseconds: compare with what it holds
    assert d.lab_seconds(scale) >= min(floor, d.azure.total_seconds())


@given(seconds, floors, st.floats(min_value=1.0, max_value=1e5, allow_nan=False))
def test_a_floor_never_makes_it_longer_than_on_azure(
    azure: float, floor: float, scale: float
) -> None:
    d = duration(azure, floor)
    assert d.lab_seconds(scale) <= d.azure.total_seconds()


@given(seconds, floors)
def test_scale_one_is_azures_own_clock(azure: float, floor: float) -> None:
    d = duration(azure, floor)
    assert d.lab_seconds(1.0) == d.azure.total_seconds()


@pytest.mark.parametrize("constant", CONSTANTS)
def test_every_constant_runs_at_azure_speed_with_scale_one(constant: AzureDuration) -> None:
    assert constant.floor_seconds < constant.azure.total_seconds()
    assert constant.lab_seconds(1.0) == constant.azure.total_seconds()


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_a_non_positive_scale_is_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        SNAPSHOT_SUBTASK_TIMEOUT.lab_seconds(bad)


def test_the_backup_constants_and_their_lab_values() -> None:
    assert DEFAULT_TIME_SCALE == 240.0
    assert SNAPSHOT_SUBTASK_TIMEOUT.azure == timedelta(minutes=95)
    assert SNAPSHOT_SUBTASK_TIMEOUT.lab_seconds(240) == pytest.approx(23.75)
    assert BACKUP_PRECHECK_STALE_AFTER is AGENT_STATUS_STALE_AFTER
    assert AGENT_STATUS_STALE_AFTER.lab_seconds(240) == 20.0  # the floor holds
    # A SAS handed out at the start of a job outlives the job's snapshot timeout and
    # the extension's own 140-minute "too late" rule, at any scale.
    for scale in (1.0, 60.0, 240.0, 10_000.0):
        sas = BACKUP_SAS_EXPIRY.lab_seconds(scale)
        assert sas > SNAPSHOT_SUBTASK_TIMEOUT.lab_seconds(scale)
        assert sas >= timedelta(minutes=140).total_seconds() / scale


def test_time_scale_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SNAPLAB_TIME_SCALE", raising=False)
    assert time_scale() == 240.0
    monkeypatch.setenv("SNAPLAB_TIME_SCALE", "1")
    assert time_scale() == 1.0
    assert timescale.SNAPSHOT_SUBTASK_TIMEOUT.lab_seconds() == 95 * 60
    for bad in ("fast", "0", "-3"):
        monkeypatch.setenv("SNAPLAB_TIME_SCALE", bad)
        with pytest.raises(ValueError):
            time_scale()
