"""Backup policies: daily run times on the lab's Azure clock, and relative run times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.errors import BadInput
from lab.platform.backup.policy import AzureClock, Policy, PolicyError, parse_run_time
from lab.provision.backups import resolve_run_time
from tests.unit.fabric_samples import FakeClock

T = datetime(2026, 11, 27, 21, 56, 23, tzinfo=UTC)


@pytest.mark.parametrize("text", ["22:00", "00:00", "23:59", " 07:05 "])
def test_run_times_are_hh_mm(text: str) -> None:
    hour, minute = parse_run_time(text)
    assert Policy("P", text).run_time == f"{hour:02d}:{minute:02d}"


@pytest.mark.parametrize("text", ["24:00", "7:05", "22:60", "2200", "", "noon", "22:00:00"])
def test_other_run_times_are_refused(text: str) -> None:
    with pytest.raises(PolicyError, match="HH:MM"):
        Policy("P", text)


@pytest.mark.parametrize("name", ["", "1st", "a b", "x" * 65, "daily/policy"])
def test_policy_names_as_azure_allows(name: str) -> None:
    with pytest.raises(PolicyError, match="policy name"):
        Policy(name, "22:00")


def test_next_run_is_today_or_tomorrow_never_now() -> None:
    policy = Policy("DailyPolicy", "22:00")
    assert policy.next_run(T) == T.replace(hour=22, minute=0, second=0)
    assert policy.next_run(T.replace(hour=22, minute=0, second=0)) == datetime(
        2026, 11, 28, 22, 0, tzinfo=UTC
    )
    assert Policy("Early", "01:30").next_run(T) == datetime(2026, 11, 28, 1, 30, tzinfo=UTC)


@given(st.integers(min_value=0, max_value=24 * 60 * 3), st.integers(0, 23), st.integers(0, 59))
def test_exactly_one_run_per_azure_day(offset_minutes: int, hour: int, minute: int) -> None:
    policy = Policy("P", f"{hour:02d}:{minute:02d}")
    start = T + timedelta(minutes=offset_minutes)
    run = policy.next_run(start)
    assert start < run <= start + timedelta(days=1)
    assert (run.hour, run.minute) == (hour, minute)
    assert policy.runs_between(start, run) and not policy.runs_between(
        start, run - timedelta(seconds=1)
    )


def test_records_round_trip() -> None:
    policy = Policy("DailyPolicy-B", "23:00")
    assert Policy.from_record(policy.to_record()) == policy


def test_the_azure_clock_runs_scaled_from_the_lab_clock() -> None:
    clock = FakeClock()
    azure = AzureClock(clock, 240.0)
    assert azure.now() == clock.now()
    clock.advance(15)  # 15 lab seconds = one Azure hour at 240
    assert azure.now() == FakeClock().now() + timedelta(hours=1)
    assert azure.lab_seconds_until(azure.now() + timedelta(days=1)) == pytest.approx(360)
    with pytest.raises(ValueError):
        AzureClock(clock, 0)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("22:00", "22:00"),
        ("7:05", "07:05"),
        ("+15m", "22:12"),  # 21:56:23 + 15 min, up to the next full minute
        ("+2h", "23:57"),
        ("+135m", "00:12"),  # past midnight
    ],
)
def test_relative_run_times_are_taken_from_the_azure_clock(spec: str, expected: str) -> None:
    assert resolve_run_time(spec, "2026-11-27T21:56:23Z") == expected


def test_a_relative_time_on_the_minute_is_kept() -> None:
    assert resolve_run_time("+1h", "2026-11-27T21:56:00Z") == "22:56"


@pytest.mark.parametrize("spec", ["soon", "+15", "-15m", "+1d", "25"])
def test_unreadable_times_are_bad_input(spec: str) -> None:
    with pytest.raises(BadInput, match="HH:MM or an offset"):
        resolve_run_time(spec, "2026-11-27T21:56:23Z")
