"""``snaplab drill end``: reveal the causes, write the debrief, remove everything.

Before the labs go, the commands each trainee typed in their guest are collected
(:mod:`lab.drill.history`); the debrief (:mod:`lab.drill.debrief`: one HTML file and
JSON) is written to the trainer's folder with a copy of the trainer's roster and
``drill.json``. Then every lab of the drill and the drill's state folder (keys, env
files) are removed: nothing of the drill stays on the host but the debrief.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import docker

from lab import signals
from lab.drill import engines as drill_engines
from lab.drill.state import DrillState, drill_dir, locked, now_iso
from lab.errors import SnaplabError
from lab.provision import lab as labs
from lab.runner.drivers import DockerDrivers, Drivers
from lab.scenario import load_scenario


@dataclass(frozen=True)
class Reveal:
    trainee: str
    scenario: str
    fixed_at: str | None
    title: str = ""  # the scenario's title: the cause, in a line


def _title(scenario_id: str) -> str:
    try:
        return load_scenario(scenario_id).spec.title
    except SnaplabError:
        return ""


@dataclass
class EndResult:
    name: str
    reveals: list[Reveal]
    files: list[Path]
    labs_removed: list[str]
    warnings: list[str] = field(default_factory=list)


def _optional(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return None


def _plain(item: Any) -> Any:
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.asdict(item)
    if hasattr(item, "model_dump"):
        return item.model_dump()
    return item


def collect_all(
    client: docker.DockerClient, state: DrillState, warnings: list[str]
) -> dict[str, list[Any]]:
    """Each trainee's guest commands, while the labs still run (empty when unreadable)."""
    history = _optional("lab.drill.history")
    commands: dict[str, list[Any]] = {t.id: [] for t in state.trainees}
    if history is None:
        warnings.append("no command history: lab.drill.history is not installed")
        return commands
    for trainee in state.trainees:
        try:
            on_engine = drill_engines.client_for(client, trainee)
            roster = labs.roster_of(on_engine, trainee.lab)
            commands[trainee.id] = list(history.collect_commands(on_engine, roster, trainee.vm))
        except SnaplabError as exc:
            warnings.append(f"{trainee.id}: commands not collected: {exc}")
    return commands


def write_debrief(
    state: DrillState, commands: Mapping[str, list[Any]], out_dir: Path
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    debrief = _optional("lab.drill.debrief")
    if debrief is not None:
        document = debrief.build_debrief(state, commands)
        files.extend(debrief.write_debrief(document, out_dir))
    else:
        fallback = out_dir / "debrief.json"
        body = {
            "drill": json.loads(state.to_json()),
            "commands": {k: [_plain(c) for c in v] for k, v in commands.items()},
        }
        fallback.write_text(json.dumps(body, indent=2, default=str) + "\n")
        files.append(fallback)
    for name in ("drill.json", "roster.txt"):
        source = drill_dir(state.name) / name
        if source.exists():
            shutil.copy2(source, out_dir / name)
            files.append(out_dir / name)
    return files


def drill_labs(client: docker.DockerClient, state: DrillState) -> dict[str, list[str]]:
    """The drill's labs by engine URL ("" = ``client``'s), with any other lab named after
    it on those engines (a reset's leftovers)."""
    by_engine: dict[str, set[str]] = {}
    for trainee in state.trainees:
        by_engine.setdefault(trainee.engine, set()).add(trainee.lab)
    prefix = f"{state.name}-t"
    for url, named in by_engine.items():
        on_engine = drill_engines.client_on(client, url)
        named.update(lab for lab in labs.lab_names(on_engine) if lab.startswith(prefix))
    return {url: sorted(named) for url, named in sorted(by_engine.items())}


def end_drill(
    client: docker.DockerClient, name: str, out_dir: Path, drivers: Drivers | None = None
) -> EndResult:
    drivers = drivers or DockerDrivers(client)
    with locked(name) as state:
        state.freeze_if_due()
        if state.ended_at is None:
            state.ended_at = now_iso()
            for trainee in state.trainees:
                trainee.record("ended", at=state.ended_at)
        final = state.model_copy(deep=True)
    warnings: list[str] = []
    commands = collect_all(client, final, warnings)
    files = write_debrief(final, commands, out_dir)
    placed = drill_labs(client, final)
    removed = sorted(lab for named in placed.values() for lab in named)
    with signals.shielded("removing the drill's labs"):
        for url, named in placed.items():
            engine_drivers = (
                drivers if not url else DockerDrivers(drill_engines.client_on(client, url))
            )
            for lab in named:
                engine_drivers.down(lab)
        shutil.rmtree(drill_dir(name), ignore_errors=True)
    reveals = [Reveal(t.id, t.scenario, t.fixed_at, _title(t.scenario)) for t in final.trainees]
    return EndResult(name, reveals, files, removed, warnings)
