"""The runbook lint: a step must be something an engineer can type against a real Azure VM.

A runbook proved in the lab is worth something only if the same steps work on Azure, so
``snaplab scenario check`` refuses a step that leans on the lab:

- ``docker``: on Azure there is no container to exec into or inspect;
- a ``snaplab`` subcommand other than ``ssh`` (how people reach a lab VM, as ``ssh`` does
  on Azure) and ``env`` (the lab's stand-ins for Azure's login and endpoints); what only
  Microsoft can do (withdrawing a broken extension release) is asked of Microsoft through
  a support case, and a ``bash publisher`` step, the lab playing Microsoft, is refused
  when the runbook is read (:mod:`lab.runbook`);
- the lab's own Python package (``import lab...``): on Azure only the SDKs exist;
- a name the fault chose: the scenario's VM names, its faults' parameter values and the
  ``artefacts`` its scenario file declares (a unit, a file, a version the fault made up).
  On a customer's VM these are unknown until observed; a step must find them by looking,
  not by knowing how the lab broke the VM.

Each finding names the runbook, the step's line and the offending word, one per line.
The lint reads only the scenario file and the runbook; it knows nothing of faults' code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.runbook import Step
from lab.scenario import Scenario

ALLOWED_SNAPLAB_COMMANDS = ("ssh", "env")

_DOCKER = re.compile(r"(?<![\w./-])docker(?![\w.-])")
# ``snaplab`` as a command (not a path, a variable or a Python module), then its next word
# after any options and quoting: ``snaplab nsg``, ``["snaplab", "jobs"``, ``snaplab --debug x``.
_SNAPLAB = re.compile(r"(?<![\w./$-])snaplab(?![\w./-])(?P<rest>.*)", re.MULTILINE)
_NEXT_WORD = re.compile(r"""^(?:[\s"',]|--?[\w-]+)*(?P<word>[A-Za-z][\w-]*)?""")
_LAB_IMPORT = re.compile(r"^\s*(?:from|import)\s+lab(?:\.|\s|$)", re.MULTILINE)
# Values too short or too generic to be a name the fault chose (booleans, small numbers).
_MIN_NAME_LENGTH = 3


@dataclass(frozen=True)
class Finding:
    """One refused word in one step."""

    runbook: str
    line: int
    problem: str

    def __str__(self) -> str:
        return f"{self.runbook} line {self.line}: {self.problem}"


def lint_scenario(scenario: Scenario, source: str | None = None) -> list[Finding]:
    """Every finding in ``scenario``'s runbook, in step order."""
    runbook = source or scenario.runbook_ref
    names = fault_chosen_names(scenario)
    findings: list[Finding] = []
    for step in scenario.steps:
        findings.extend(lint_step(step, runbook, names))
    return findings


def fault_chosen_names(scenario: Scenario) -> list[str]:
    """The names a step may not contain: the VMs', the faults' parameter values and
    declared artefacts, longest first so a finding names the whole word."""
    spec = scenario.spec
    names = {vm.name for vm in spec.vms}
    for fault in spec.faults:
        names.update(str(v) for v in _scalars(fault.params.values()))
        names.update(fault.artefacts)
    return sorted(
        (n for n in names if len(n) >= _MIN_NAME_LENGTH and not _is_number_or_bool(n)),
        key=lambda n: (-len(n), n),
    )


def lint_step(step: Step, runbook: str, names: Sequence[str]) -> list[Finding]:
    """What ``step`` does that no engineer could do on Azure."""
    code = step.code
    found: list[Finding] = []

    def at(offset: int, problem: str) -> None:
        found.append(Finding(runbook, step.line + 1 + code.count("\n", 0, offset), problem))

    for match in _DOCKER.finditer(code):
        at(match.start(), "calls 'docker': an Azure VM is not a container; use SSH or the API")
    for match in _SNAPLAB.finditer(code):
        word = _NEXT_WORD.match(match.group("rest"))
        command = word.group("word") if word else None
        if command not in ALLOWED_SNAPLAB_COMMANDS:
            at(
                match.start(),
                f"calls 'snaplab {command or ''}'".rstrip()
                + ": only 'snaplab ssh' and 'snaplab env' stand in for what Azure has; "
                "use the Azure SDK or az",
            )
    if step.language == "python":
        for match in _LAB_IMPORT.finditer(code):
            at(match.start(), "imports the lab's own package: on Azure only the SDKs exist")
    for name in names:
        pattern = re.compile(rf"(?<![\w.-]){re.escape(name)}(?![\w-]|\.\w)")
        for match in pattern.finditer(code):
            at(
                match.start(),
                f"names {name!r}, which the fault chose: find it by observation",
            )
    return sorted(found, key=lambda f: f.line)


def lint_catalog(scenarios: Iterable[Scenario]) -> list[Finding]:
    return [f for s in scenarios for f in lint_scenario(s)]


def _scalars(values: Iterable[object]) -> Iterable[object]:
    for value in values:
        if isinstance(value, dict):
            yield from _scalars(value.values())
        elif isinstance(value, list | tuple):
            yield from _scalars(value)
        elif isinstance(value, str | int | float):
            yield value


def _is_number_or_bool(text: str) -> bool:
    if text.lower() in ("true", "false", "none"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def runbook_source(scenario: Scenario, root: Path) -> str:
    """The runbook's path as a user gave the folder (relative when it can be)."""
    try:
        return str(scenario.runbook_path.relative_to(root.parent))
    except ValueError:
        return str(scenario.runbook_path)
