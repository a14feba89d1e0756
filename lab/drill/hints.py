"""``snaplab drill hint TRAINEE``: the scenario's runbook, one step at a time.

A runbook is written as numbered ``##`` sections, each a step a person takes (look,
fix, confirm); a hint is the next section, heading, prose and commands as written. The
runbook's title and preamble are never shown: the title names the cause. A runbook
without ``##`` sections gives its executable fences one at a time instead. Each hint
revealed is recorded (step number), so the board and the debrief count them.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from markdown_it import MarkdownIt

from lab.drill.state import locked
from lab.errors import BadInput
from lab.runbook import parse_runbook
from lab.scenario import load_scenario


@dataclass(frozen=True)
class Hint:
    trainee: str
    step: int  # 1-based; 0 when every hint was already given
    total: int
    text: str


def sections(runbook: str, source: str = "runbook.md") -> list[str]:
    """The runbook's hints in order: its ``##`` sections, else its executable fences."""
    lines = runbook.splitlines()
    starts = [
        token.map[0]
        for token in MarkdownIt("commonmark").parse(runbook)
        if token.type == "heading_open" and token.tag == "h2" and token.map is not None
    ]
    if starts:
        bounds = [*starts, len(lines)]
        return ["\n".join(lines[begin:end]).strip() for begin, end in pairwise(bounds)]
    return [
        f"```{step.language} {step.kind}\n{step.code.rstrip()}\n```"
        for step in parse_runbook(runbook, source)
    ]


def next_hint(name: str, trainee_id: str) -> Hint:
    """Reveal (and record) the trainee's next hint."""
    with locked(name) as state:
        if state.ended_at is not None:
            raise BadInput(f"drill {name!r} has ended")
        trainee = state.trainee(trainee_id)
        scenario = load_scenario(trainee.scenario)
        hints = sections(scenario.runbook_path.read_text(), scenario.runbook_ref)
        given = trainee.hints
        if given >= len(hints):
            return Hint(trainee_id, 0, len(hints), "no more hints: every step has been shown")
        step = given + 1
        trainee.record("hint", step=step, of=len(hints))
        return Hint(trainee_id, step, len(hints), hints[given])
