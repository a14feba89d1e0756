"""``snaplab drill status``: the board (trainee, state, attempts, hints, time).

Times run from the drill's start to the trainee's fix, to the time limit (the board
freezes there: nothing that happens later changes a row) or to now. The board names no
scenario: a trainer may project it for the room.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from lab.drill.state import DrillState, Trainee, parse_iso


@dataclass(frozen=True)
class Row:
    trainee: str
    state: str  # working | fixed | time up | ended
    attempts: int
    hints: int
    resets: int
    elapsed_s: int


def _state_of(fixed: datetime | None, frozen: datetime | None, ended: datetime | None) -> str:
    if fixed is not None:
        return "fixed"
    if frozen is not None:
        return "time up"
    return "ended" if ended is not None else "working"


def _counted(drill: DrillState, trainee: Trainee, until: datetime | None) -> tuple[int, int, int]:
    """Attempts, hints and resets up to ``until`` (the freeze): later ones do not count."""

    def before(at: str) -> bool:
        return until is None or parse_iso(at) <= until

    attempts = sum(1 for e in trainee.of_kind("check") if not e.detail.get("late") and before(e.at))
    hints = sum(1 for e in trainee.of_kind("hint") if before(e.at))
    resets = sum(1 for e in trainee.of_kind("reset") if before(e.at))
    return attempts, hints, resets


def rows(drill: DrillState, moment: datetime | None = None) -> list[Row]:
    now = moment or datetime.now(UTC)
    started = parse_iso(drill.started_at)
    frozen = parse_iso(drill.frozen_at) if drill.frozen_at else None
    if frozen is None and drill.past_limit(now):
        frozen = drill.deadline  # due but not yet recorded: the board is frozen all the same
    ended = parse_iso(drill.ended_at) if drill.ended_at else None
    board = []
    for trainee in drill.trainees:
        fixed = parse_iso(trainee.fixed_at) if trainee.fixed_at else None
        if fixed is not None and frozen is not None and fixed > frozen:
            fixed = None  # a fix recorded after the freeze does not count
        stop = min(t for t in (fixed, frozen, ended, now) if t is not None)
        attempts, hints, resets = _counted(drill, trainee, frozen)
        state = _state_of(fixed, frozen, ended)
        board.append(
            Row(trainee.id, state, attempts, hints, resets, int((stop - started).total_seconds()))
        )
    return board


def clock(seconds: int) -> str:
    minutes, secs = divmod(max(0, seconds), 60)
    return f"{minutes}:{secs:02d}"


def remaining(drill: DrillState, moment: datetime | None = None) -> str:
    deadline = drill.deadline
    if deadline is None:
        return "no time limit"
    left = int((deadline - (moment or datetime.now(UTC))).total_seconds())
    return "time is up: the board is frozen" if left <= 0 else f"{clock(left)} left"


def render(drill: DrillState, moment: datetime | None = None) -> str:
    """The board as plain text (the CLI prints it as is, or inside a rich table)."""
    header = f"{'trainee':<8} {'state':<8} {'attempts':>8} {'hints':>5} {'resets':>6} {'time':>7}"
    lines = [f"Drill {drill.name}: {remaining(drill, moment)}", header]
    for row in rows(drill, moment):
        lines.append(
            f"{row.trainee:<8} {row.state:<8} {row.attempts:>8} {row.hints:>5} "
            f"{row.resets:>6} {clock(row.elapsed_s):>7}"
        )
    return "\n".join(lines)
