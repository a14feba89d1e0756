"""The printable rosters: the trainer's (``roster.txt``, with each trainee's scenario) and
the room's (``roster-trainees.txt``: who, how to connect, the symptom; never the cause).

The room's copy is what a trainer hands out or projects; the scenario column exists only
in the trainer's copy and in ``drill.json``.
"""

from __future__ import annotations

from pathlib import Path

from lab.drill.state import DrillState, Trainee, drill_dir

TRAINER_ROSTER = "roster.txt"
TRAINEE_ROSTER = "roster-trainees.txt"
NO_ACCESS = "not set up (trainer: snaplab ssh --lab LAB)"


def _connect(trainee: Trainee) -> str:
    return trainee.access.ssh or NO_ACCESS


def _symptom(trainee: Trainee) -> str:
    if trainee.symptom is None:
        return "-"
    return f"{trainee.symptom.error_code}: {trainee.symptom.message}"


def render(state: DrillState, with_scenarios: bool) -> str:
    """A plain-text table, one block per trainee (symptoms are long lines)."""
    limit = f"{state.time_limit_s // 60} min" if state.time_limit_s else "none"
    lines = [
        f"Drill {state.name}  started {state.started_at}  time limit {limit}",
        "",
    ]
    for trainee in state.trainees:
        head = f"{trainee.id}  lab {trainee.lab}  VM {trainee.vm}"
        if with_scenarios:
            head += f"  scenario {trainee.scenario}"
        lines.append(head)
        lines.append(f"    connect: {_connect(trainee)}")
        if trainee.access.env_file:
            lines.append(f"    platform credentials: {trainee.access.env_file}")
        lines.append(f"    symptom: {_symptom(trainee)}")
        lines.append("")
    return "\n".join(lines)


def write_rosters(state: DrillState) -> tuple[Path, Path]:
    folder = drill_dir(state.name)
    trainer = folder / TRAINER_ROSTER
    room = folder / TRAINEE_ROSTER
    trainer.write_text(render(state, with_scenarios=True))
    room.write_text(render(state, with_scenarios=False))
    return trainer, room
