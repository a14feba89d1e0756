"""A drill's commands end to end over fake drivers: start, check, hint, reset, end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lab.drill import check as drill_check
from lab.drill import end as drill_end
from lab.drill import plan
from lab.drill import start as drill_start
from lab.drill.hints import next_hint
from lab.drill.reset import reset_trainee
from lab.drill.state import drill_names, load, locked
from lab.errors import BadInput
from lab.platform.roster import GuestEntry, Roster
from lab.scenario import load_scenarios
from tests.unit.test_runner_fakes import (
    SCENARIO_YAML,
    FakeDrivers,
    FakeFault,
    fake_fault,
    write_scenario,
)

__all__ = ["fake_fault"]  # the fixture, used by name

RUNBOOK = (
    "# Runbook: names the cause\n\n## 1. Look\n\n```bash guest\nls\n```\n\n"
    "## 2. Fix\n\n```bash guest fix\ntrue\n```\n"
)


class Progress:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def phase(self, trainee: str, text: str) -> None:
        self.lines.append((trainee, text))

    def done(self, trainee: str, text: str) -> None:
        self.lines.append((trainee, f"done: {text}"))


def _roster(_client: Any, lab: str) -> Roster:
    guest = GuestEntry("vm1", "10.0.0.10", "02:42:00:00:00:00", "2.7.3.0", f"c-{lab}")
    return Roster(
        lab=lab,
        subnet="10.0.0.0/24",
        fabric_ip="10.0.0.2",
        storage_ip="10.0.0.3",
        guests=(guest,),
        time_scale=60.0,
    )


@pytest.fixture
def drills(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_fault: FakeFault) -> FakeDrivers:
    monkeypatch.setenv("SNAPLAB_STATE_DIR", str(tmp_path / "state"))
    catalog = tmp_path / "catalog"
    for scenario_id in ("demo", "other"):
        yaml_text = SCENARIO_YAML.replace("id: demo", f"id: {scenario_id}")
        write_scenario(catalog, scenario_id, yaml_text, RUNBOOK)
    monkeypatch.setenv("SNAPLAB_SCENARIOS_DIR", str(catalog))
    monkeypatch.setattr(drill_start.labs, "lab_names", lambda client: [])
    monkeypatch.setattr(drill_start.access_hook, "grant", lambda *args: None)
    monkeypatch.setattr(drill_start.guest_check, "install", lambda *args: None)
    monkeypatch.setattr(drill_check.labs, "roster_of", _roster)
    monkeypatch.setattr(drill_end, "_optional", lambda module: None)
    return FakeDrivers()


def _start(drivers: FakeDrivers, name: str = "dra-f", trainees: int = 2) -> Progress:
    ids = plan.assign(trainees, ["demo", "other"], ["demo", "other"])
    loaded = {s.id: s for s in load_scenarios(sorted(set(ids)))}
    request = drill_start.StartRequest(name, plan.seats(name, ids), loaded, 2700, 7)
    progress = Progress()
    drill_start.start_drill(None, request, progress, drivers)  # type: ignore[arg-type]
    return progress


def test_start_writes_state_and_rosters(drills: FakeDrivers, tmp_path: Path) -> None:
    progress = _start(drills)
    state = load("dra-f")
    assert [t.lab for t in state.trainees] == ["dra-f-t01", "dra-f-t02"]
    assert [t.scenario for t in state.trainees] == ["demo", "other"]
    assert state.trainees[0].symptom is not None
    assert state.trainees[0].symptom.error_code == "GuestAgentSnapshotTaskStatusError"
    assert [e.kind for e in state.trainees[0].events] == ["started"]
    folder = tmp_path / "state" / "drills" / "dra-f"
    trainer = (folder / "roster.txt").read_text()
    room = (folder / "roster-trainees.txt").read_text()
    assert "scenario demo" in trainer and "scenario other" in trainer
    assert "demo" not in room.replace("dra-f", "") and "other" not in room
    assert "GuestAgentSnapshotTaskStatusError" in room
    assert ("t01", "done: ready") in progress.lines
    assert drills.live_labs == {"dra-f-t01", "dra-f-t02"}


def test_a_lab_that_does_not_break_fails_the_whole_drill(drills: FakeDrivers) -> None:
    ok = {"job_id": "j", "status": "Completed", "error_code": None}
    drills.jobs = [ok, ok]
    with pytest.raises(drill_start.DrillFailed, match="first backup should fail, but it completed"):
        _start(drills)
    assert drills.live_labs == set()
    assert drill_names() == []


def test_a_failing_lab_removes_every_lab(drills: FakeDrivers) -> None:
    drills.fail_in["inject"] = RuntimeError("boom")
    with pytest.raises(drill_start.DrillFailed, match="every lab removed"):
        _start(drills)
    assert drills.live_labs == set()
    assert drill_names() == []


def test_check_not_yet_then_fixed(drills: FakeDrivers) -> None:
    _start(drills)
    first = drill_check.run_check(None, "dra-f", "t01", drills)  # type: ignore[arg-type]
    assert not first.fixed and first.attempt == 1
    assert "not yet" in first.line() and "demo" not in first.line()
    drills.broken.discard("dra-f-t01")
    second = drill_check.run_check(None, "dra-f", "t01", drills)  # type: ignore[arg-type]
    assert second.fixed and second.attempt == 2
    trainee = load("dra-f").trainee("t01")
    assert trainee.attempts == 2 and trainee.fixed_at is not None
    assert [e.kind for e in trainee.events] == ["started", "check", "check", "fixed"]


def test_completed_backup_with_a_cause_left_is_not_yet(drills: FakeDrivers) -> None:
    _start(drills)
    drills.broken.discard("dra-f-t01")
    drills.causes_after_runbook = ("demo",)
    result = drill_check.run_check(None, "dra-f", "t01", drills)  # type: ignore[arg-type]
    assert not result.fixed
    assert "completed, but what broke it is still there" in result.line()


def test_check_after_the_limit_is_refused_and_recorded(drills: FakeDrivers) -> None:
    _start(drills)
    with locked("dra-f") as state:
        state.started_at = "2000-01-01T00:00:00Z"
    backups = drills.names().count("backup")
    result = drill_check.run_check(None, "dra-f", "t02", drills)  # type: ignore[arg-type]
    assert result.late and "time is up" in result.line()
    assert drills.names().count("backup") == backups  # no backup ran
    state = load("dra-f")
    assert state.frozen_at is not None
    assert state.trainee("t02").of_kind("check")[0].detail == {"late": True}


def test_hints_one_at_a_time(drills: FakeDrivers) -> None:
    _start(drills)
    first = next_hint("dra-f", "t01")
    second = next_hint("dra-f", "t01")
    done = next_hint("dra-f", "t01")
    assert (first.step, second.step, done.step) == (1, 2, 0)
    assert first.text.startswith("## 1. Look") and "names the cause" not in first.text
    assert load("dra-f").trainee("t01").hints == 2


def test_unknown_trainee_is_bad_input(drills: FakeDrivers) -> None:
    _start(drills)
    with pytest.raises(BadInput, match="t07"):
        next_hint("dra-f", "t07")


def test_reset_gives_a_fresh_broken_lab(drills: FakeDrivers) -> None:
    _start(drills)
    drills.broken.discard("dra-f-t02")
    fresh = reset_trainee(None, "dra-f", "t02", lambda _: None, drills)  # type: ignore[arg-type]
    assert fresh.lab == "dra-f-t02" and fresh.scenario == "other"
    assert "dra-f-t02" in drills.broken  # broken again
    assert [e.kind for e in load("dra-f").trainee("t02").events] == ["started", "reset"]


def test_end_reveals_writes_debrief_and_leaves_nothing(drills: FakeDrivers, tmp_path: Path) -> None:
    _start(drills)
    drills.broken.discard("dra-f-t01")
    drill_check.run_check(None, "dra-f", "t01", drills)  # type: ignore[arg-type]
    monkeypatch_labs = pytest.MonkeyPatch()
    monkeypatch_labs.setattr(drill_end.labs, "lab_names", lambda client: ["dra-f-t09", "x"])
    try:
        result = drill_end.end_drill(None, "dra-f", tmp_path / "out", drills)  # type: ignore[arg-type]
    finally:
        monkeypatch_labs.undo()
    assert [r.title for r in result.reveals] == ["A demo failure", "A demo failure"]
    assert [(r.trainee, r.scenario, r.fixed_at is not None) for r in result.reveals] == [
        ("t01", "demo", True),
        ("t02", "other", False),
    ]
    assert result.labs_removed == ["dra-f-t01", "dra-f-t02", "dra-f-t09"]
    assert drills.live_labs == set()
    assert drill_names() == []
    assert not (tmp_path / "state" / "drills" / "dra-f").exists()
    debrief = json.loads((tmp_path / "out" / "debrief.json").read_text())
    assert debrief["drill"]["ended_at"] is not None
    assert (tmp_path / "out" / "roster.txt").exists()


def test_a_scheduled_symptom_is_checked_on_the_next_scheduled_run(
    drills: FakeDrivers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One lab at a time: the fake hands its jobs out in call order, and two labs starting
    # together would take them in either order (t02 could get t01's scheduled failure).
    monkeypatch.setattr(drill_start.capacity, "start_workers", lambda trainees: 1)
    drills.jobs = [
        {
            "job_id": "s1",
            "status": "Failed",
            "error_code": "GuestAgentSnapshotTaskStatusError",
            "error_message": "m",
            "trigger": "Scheduled",
            "policy": "DailyPolicy",
        },
        {
            "job_id": "o1",
            "status": "Failed",
            "error_code": "GuestAgentSnapshotTaskStatusError",
            "error_message": "m",
        },
    ]
    _start(drills)
    assert load("dra-f").trainee("t01").symptom_job == {
        "job_id": "s1",
        "trigger": "Scheduled",
        "policy": "DailyPolicy",
    }
    asked: list[float] = []

    def scheduled(roster: Roster, vm: str, seconds: float) -> dict[str, Any]:
        asked.append(seconds)
        return {"job_id": "s2", "status": "Completed", "trigger": "Scheduled"}

    drills.broken.discard("dra-f-t01")
    backups = drills.names().count("backup")
    result = drill_check.run_check(
        None,
        "dra-f",
        "t01",
        drills,
        scheduled=scheduled,  # type: ignore[arg-type]
    )
    assert result.fixed
    assert drills.names().count("backup") == backups  # no on-demand backup
    assert asked == [86_400 / 60.0 + 180.0]
    other = drill_check.run_check(None, "dra-f", "t02", drills)  # type: ignore[arg-type]
    assert other.attempt == 1  # t02's symptom was on demand: an on-demand check
