"""The debrief of a drill: one JSON document and one self-contained HTML file.

Per trainee: the scenario (revealed now: its id, title and cause), the symptom they were
given, the timeline (start, hints, checks, resets, fixed, frozen, ended; each with its
minutes since the start), the commands typed in their guest's shell
(:mod:`lab.drill.history`) and the runbook that fixes it, as Markdown and rendered.

The HTML is one file with its CSS inline and nothing fetched (no script, font, image or
link to anything outside it), so it opens from a mail attachment or a USB stick. It is
rendered with Jinja2 with autoescaping on: trainees typed the commands, and a command is
text, never markup. Runbooks are rendered by markdown-it-py with raw HTML off.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markdown_it import MarkdownIt

from lab.drill.state import DrillState, Trainee, parse_iso
from lab.errors import SnaplabError
from lab.scenario import load_scenario

DEBRIEF_FORMAT = 1
JSON_FILE = "debrief.json"
HTML_FILE = "debrief.html"
TEMPLATE = "debrief.html.j2"


def _field(item: Any, name: str) -> str:
    """A command's field, whether it is history's dataclass, a model or a dict."""
    value = item.get(name) if isinstance(item, Mapping) else getattr(item, name, "")
    return "" if value is None else str(value)


def _minutes(start: str, moment: str) -> float | None:
    try:
        return round((parse_iso(moment) - parse_iso(start)).total_seconds() / 60, 1)
    except (ValueError, TypeError):
        return None


def _scenario(scenario_id: str) -> dict[str, Any]:
    """What the trainer reveals of a scenario; a scenario gone from the catalog since
    the drill started is named, with no runbook."""
    try:
        scenario = load_scenario(scenario_id)
        markdown = scenario.runbook_path.read_text()
    except (SnaplabError, OSError):
        return {"id": scenario_id, "title": "", "cause": "", "runbook": None}
    html = MarkdownIt("commonmark", {"html": False}).render(markdown)
    return {
        "id": scenario_id,
        "title": scenario.spec.title,
        "cause": " ".join(scenario.spec.cause.split()),
        "runbook": {"path": scenario.runbook_ref, "markdown": markdown, "html": html},
    }


def _trainee(state: DrillState, trainee: Trainee, commands: Sequence[Any]) -> dict[str, Any]:
    timeline = [
        {
            "at": event.at,
            "minutes": _minutes(state.started_at, event.at),
            "kind": event.kind,
            "detail": event.detail,
        }
        for event in sorted(trainee.events, key=lambda e: e.at)
    ]
    fixed_at = trainee.fixed_at
    return {
        "id": trainee.id,
        "lab": trainee.lab,
        "vm": trainee.vm,
        "scenario": _scenario(trainee.scenario),
        "symptom": trainee.symptom.model_dump() if trainee.symptom else None,
        "fixed": fixed_at is not None,
        "fixed_at": fixed_at,
        "minutes_to_fix": _minutes(state.started_at, fixed_at) if fixed_at else None,
        "attempts": trainee.attempts,
        "hints": trainee.hints,
        "timeline": timeline,
        "commands": [
            {"at": _field(c, "at"), "user": _field(c, "user"), "command": _field(c, "command")}
            for c in commands
        ],
    }


def build_debrief(state: DrillState, commands: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """The debrief document (JSON-ready) for a drill that has ended (or is ending)."""
    trainees = [_trainee(state, t, commands.get(t.id, ())) for t in state.trainees]
    return {
        "format": DEBRIEF_FORMAT,
        "drill": state.name,
        "started_at": state.started_at,
        "ended_at": state.ended_at,
        "frozen_at": state.frozen_at,
        "time_limit_s": state.time_limit_s,
        "seed": state.seed,
        "summary": {
            "trainees": len(trainees),
            "fixed": sum(1 for t in trainees if t["fixed"]),
        },
        "trainees": trainees,
    }


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("lab.drill", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["clock"] = _clock
    env.filters["detail"] = _detail
    return env


def _clock(moment: str | None) -> str:
    if not moment:
        return ""
    try:
        return datetime.fromisoformat(moment.replace("Z", "+00:00")).strftime("%H:%M:%S")
    except ValueError:
        return moment


def _detail(detail: Mapping[str, Any]) -> str:
    """An event's detail on one line, without the empty fields."""
    return ", ".join(f"{k}: {v}" for k, v in detail.items() if v not in (None, "", [], {}))


def render_html(debrief: Mapping[str, Any]) -> str:
    return _environment().get_template(TEMPLATE).render(debrief=debrief)


def write_debrief(debrief: Mapping[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """``debrief.json`` and ``debrief.html`` in ``out_dir`` (made if missing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / JSON_FILE, out_dir / HTML_FILE
    json_path.write_text(json.dumps(debrief, indent=2, default=str) + "\n")
    html_path.write_text(render_html(debrief))
    return json_path, html_path
