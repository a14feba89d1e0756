"""The board (states, counts, frozen time) and the hints' sections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lab.drill import board
from lab.drill.hints import sections
from lab.drill.state import DrillState, Trainee

START = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)


def _at(seconds: int) -> str:
    return (START + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _drill(limit: int | None = 600) -> DrillState:
    return DrillState(
        name="dra-b",
        started_at=_at(0),
        time_limit_s=limit,
        trainees=[
            Trainee(id=f"t0{i}", lab=f"dra-b-t0{i}", vm="vm1", scenario="blocked-egress")
            for i in (1, 2, 3)
        ],
    )


def test_rows_while_running() -> None:
    drill = _drill()
    t1, t2, _ = drill.trainees
    t1.record("hint", at=_at(30), step=1)
    t1.record("check", at=_at(60), fixed=False)
    t1.record("check", at=_at(120), fixed=True)
    t1.record("fixed", at=_at(120))
    t2.record("reset", at=_at(90))
    rows = {r.trainee: r for r in board.rows(drill, START + timedelta(seconds=200))}
    assert rows["t01"] == board.Row("t01", "fixed", 2, 1, 0, 120)
    assert rows["t02"] == board.Row("t02", "working", 0, 0, 1, 200)
    assert rows["t03"].state == "working"


def test_board_freezes_at_the_limit() -> None:
    drill = _drill(limit=600)
    t1, t2, t3 = drill.trainees
    t1.record("check", at=_at(500), fixed=False)
    t1.record("check", at=_at(650), fixed=True)  # after the limit: not counted
    t1.record("fixed", at=_at(650))
    t2.record("hint", at=_at(700), step=1)
    t3.record("check", at=_at(100), fixed=True)
    t3.record("fixed", at=_at(100))
    later = START + timedelta(seconds=3600)
    rows = {r.trainee: r for r in board.rows(drill, later)}
    assert rows["t01"] == board.Row("t01", "time up", 1, 0, 0, 600)
    assert rows["t02"] == board.Row("t02", "time up", 0, 0, 0, 600)
    assert rows["t03"] == board.Row("t03", "fixed", 1, 0, 0, 100)
    # the same board whether or not the freeze was recorded yet
    drill.freeze_if_due(later)
    assert {r.trainee: r for r in board.rows(drill, later)} == rows
    assert "time is up" in board.render(drill, later)


def test_late_checks_are_not_attempts() -> None:
    drill = _drill()
    drill.trainees[0].record("check", at=_at(10), late=True)
    assert board.rows(drill, START + timedelta(seconds=20))[0].attempts == 0


def test_render_names_no_scenario() -> None:
    drill = _drill(limit=None)
    text = board.render(drill, START + timedelta(seconds=75))
    assert "blocked-egress" not in text
    assert "no time limit" in text
    assert "t01      working         0     0      0    1:15" in text


def test_remaining() -> None:
    drill = _drill(limit=600)
    assert board.remaining(drill, START + timedelta(seconds=30)) == "9:30 left"


RUNBOOK = """\
# Runbook: the agent is stopped (the title names the cause)

**Symptom**: backups fail.

## 1. Look

```bash guest
systemctl status walinuxagent
```

## 2. Fix

```bash guest fix
systemctl restart walinuxagent
```
"""


def test_hints_are_the_sections_without_the_title() -> None:
    hints = sections(RUNBOOK)
    assert len(hints) == 2
    assert hints[0].startswith("## 1. Look")
    assert "systemctl status" in hints[0]
    assert hints[1].startswith("## 2. Fix")
    assert all("the cause" not in h and "Symptom" not in h for h in hints)


def test_hints_without_sections_are_the_steps() -> None:
    text = "# T\n\n```bash guest\nls\n```\n\n```bash platform fix\naz vm list\n```\n"
    assert sections(text) == ["```bash guest\nls\n```", "```bash platform\naz vm list\n```"]


def test_every_catalog_runbook_has_hints() -> None:
    from lab.scenario import load_scenarios

    for item in load_scenarios():
        hints = sections(item.runbook_path.read_text())
        assert hints, item.id
        assert all(not h.startswith("# ") for h in hints), item.id
