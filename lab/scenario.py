"""Load and validate scenario folders: ``scenarios/<id>/{scenario.yaml, runbook.md}``.

Everything wrong with a scenario is found here, before a lab is started, and reported
as one line that names the file, the field and what was expected (exit code 2 through
:class:`lab.errors.BadInput`): YAML syntax (with its line), duplicate keys, unknown keys,
wrong types, an id that is not its folder's name, a fault nobody registered, a fault on
a VM the scenario does not have, a runbook that is missing, has no executable step or
marks no step as its fix (``bash guest fix``: what the ``without-fix`` variant leaves out).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

import lab
from lab.errors import BadInput
from lab.runbook import Step, parse_runbook
from lab.scenario_schema import PATTERN_MEANING, Expect, ScenarioFile
from lab.yaml_input import dotted as _dotted
from lab.yaml_input import line_of as _line_of
from lab.yaml_input import parse_mapping, plain_error
from lab.yaml_input import show as _show

SCENARIO_FILE = "scenario.yaml"
SCENARIOS_DIR_ENV = "SNAPLAB_SCENARIOS_DIR"


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: its file's content, its folder and its runbook's steps."""

    spec: ScenarioFile
    folder: Path
    steps: tuple[Step, ...]

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def primary_vm(self) -> str:
        """The VM that is backed up, diagnosed and where ``bash guest`` steps run."""
        return self.spec.faults[0].vm

    @property
    def runbook_path(self) -> Path:
        return self.folder / self.spec.runbook

    @property
    def runbook_ref(self) -> str:
        """The runbook as the diagnosis names it: ``scenarios/<id>/runbook.md``."""
        return f"scenarios/{self.id}/{self.spec.runbook}"


def scenarios_dir() -> Path:
    """The catalog: ``$SNAPLAB_SCENARIOS_DIR``, else ``scenarios/`` beside the package."""
    override = os.environ.get(SCENARIOS_DIR_ENV)
    if override:
        return Path(override)
    return Path(lab.__file__).resolve().parent.parent / "scenarios"


def scenario_ids(directory: Path | None = None) -> list[str]:
    """Every folder of the catalog (hidden and ``_``-prefixed ones excepted), sorted."""
    root = directory or scenarios_dir()
    if not root.is_dir():
        raise BadInput(f"{_show(root)}: no scenarios folder here (set {SCENARIOS_DIR_ENV})")
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )


def load_scenario(scenario_id: str, directory: Path | None = None) -> Scenario:
    """One scenario by id; an unknown id lists the known ones."""
    root = directory or scenarios_dir()
    known = scenario_ids(root)
    if scenario_id not in known:
        raise BadInput(f"unknown scenario {scenario_id!r} (known: {', '.join(known) or 'none'})")
    return load_folder(root / scenario_id, known)


def load_scenarios(ids: Sequence[str] = (), directory: Path | None = None) -> list[Scenario]:
    """The named scenarios in the order given, or the whole catalog; all validated first."""
    root = directory or scenarios_dir()
    known = scenario_ids(root)
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise BadInput(f"unknown scenario {unknown[0]!r} (known: {', '.join(known) or 'none'})")
    chosen = list(dict.fromkeys(ids)) if ids else known
    if not chosen:
        raise BadInput(f"{_show(root)}: the catalog has no scenario")
    return [load_folder(root / i, known) for i in chosen]


def load_folder(folder: Path, catalog: Sequence[str] | None = None) -> Scenario:
    """Validate one scenario folder. ``catalog`` (the ids beside it) checks diagnosis ids."""
    path = folder / SCENARIO_FILE
    if not path.is_file():
        raise BadInput(f"{_show(folder)}: no {SCENARIO_FILE} in this scenario folder")
    text = path.read_text(encoding="utf-8")
    raw = _parse_yaml(text, path)
    try:
        spec = ScenarioFile.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # A misspelt key also leaves its right spelling missing: name the typo first.
        error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        where = _line_of(text, error["loc"])
        suffix = f" (line {where})" if where else ""
        raise BadInput(f"{_show(path)}: {_dotted(error['loc'])}: {_plain(error)}{suffix}") from None
    _check_consistency(spec, folder, path, text, catalog)
    runbook = folder / spec.runbook
    steps = parse_runbook(runbook.read_text(encoding="utf-8"), _show(runbook))
    _check_steps(steps, spec, runbook)
    return Scenario(spec=spec, folder=folder, steps=tuple(steps))


def _check_consistency(
    spec: ScenarioFile, folder: Path, path: Path, text: str, catalog: Sequence[str] | None
) -> None:
    def bad(loc: tuple[str | int, ...], problem: str) -> BadInput:
        where = _line_of(text, loc)
        suffix = f" (line {where})" if where else ""
        return BadInput(f"{_show(path)}: {_dotted(loc)}: {problem}{suffix}")

    if spec.id != folder.name:
        raise bad(("id",), f"{spec.id!r} must be the folder's name, {folder.name!r}")
    names = [vm.name for vm in spec.vms]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise bad(("vms", index, "name"), f"{name!r} is declared twice")
    from lab.faults import fault_by_id

    for index, fault in enumerate(spec.faults):
        try:
            fault_by_id(fault.fault)
        except BadInput as exc:
            raise bad(("faults", index, "fault"), str(exc)) from None
        if fault.vm not in names:
            raise bad(("faults", index, "vm"), f"{fault.vm!r} is not one of {', '.join(names)}")
    expectations: list[tuple[tuple[str | int, ...], Expect]] = [(("expect",), spec.expect)]
    agents: list[str] = []
    for index, variant in enumerate(spec.agent_variants):
        if variant.agent in agents:
            raise bad(("agent_variants", index, "agent"), f"{variant.agent!r} is listed twice")
        agents.append(variant.agent)
        expectations.append((("agent_variants", index, "expect"), variant.expect))
    if catalog is not None:
        for where, expect in expectations:
            for index, cause in enumerate(expect.diagnosis):
                if cause not in catalog:
                    raise bad(
                        (*where, "diagnosis", index),
                        f"{cause!r} is not a scenario id ({', '.join(catalog)})",
                    )
    runbook = spec.runbook
    if Path(runbook).name != runbook or runbook in (".", ".."):
        raise bad(("runbook",), f"{runbook!r} must be a file name in {_show(folder)}")
    if not (folder / runbook).is_file():
        raise bad(("runbook",), f"file {runbook!r} does not exist in {_show(folder)}")


def _check_steps(steps: Sequence[Step], spec: ScenarioFile, runbook: Path) -> None:
    if not steps:
        raise BadInput(
            f"{_show(runbook)}: no executable step (fences marked 'bash guest', "
            "'bash platform' or 'python platform')"
        )
    names = [vm.name for vm in spec.vms]
    for step in steps:
        if step.vm is not None and step.vm not in names:
            raise BadInput(
                f"{_show(runbook)} line {step.line}: vm={step.vm!r} is not one of "
                f"the scenario's VMs ({', '.join(names)})"
            )
    if not any(step.fix for step in steps):
        raise BadInput(
            f"{_show(runbook)}: no step is marked as the fix (add 'fix' to the fence of the "
            "step(s) that clear the cause, e.g. 'bash guest fix')"
        )


def _parse_yaml(text: str, path: Path) -> dict[str, Any]:
    return parse_mapping(text, _show(path), "id, title")


def _plain(error: ErrorDetails) -> str:
    return plain_error(error, ScenarioFile, PATTERN_MEANING)
