"""Read, validate and write case files.

Everything wrong with a case file is found here, before a lab is started, and reported as
one line naming the file, the field path and what was expected (exit 2 through
:class:`lab.errors.BadInput`), e.g. ``case.yaml: vms[0].agent: '2.3' is not one of ...``:
YAML syntax, duplicate keys, unknown keys, wrong types, and what needs more than one
field (VM names twice, a fault nobody registered, a fault or rule on a VM the case does
not have, two rules with one priority, a symptom that contradicts itself).

:func:`dump_case` writes a case back as YAML with the schema's key order and without the
fields that only repeat a default, so ``load(dump(case)) == case`` and a file written
twice is the same file.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from lab.cases.model import PATTERN_MEANING, Case, CaseVm
from lab.errors import BadInput
from lab.yaml_input import dotted, line_of, parse_mapping, plain_error, show

# The agents the lab's crash mechanism (stale-agent's: a unit without a restart policy,
# SIGKILL) applies to: below Azure's minimum supported 2.2.53.1.
CRASHABLE_AGENTS = ("2.2.47",)
# waagent.conf keys that have their own field, so a case says them once.
PROXY_KEYS = ("HttpProxy.Host", "HttpProxy.Port")


def load_case(path: Path, fault_ids: Collection[str] | None = None) -> Case:
    """Read and validate ``path``; any problem is one :class:`BadInput` line.

    ``fault_ids``: the catalog's fault ids to check ``faults:`` against. This module
    never imports the faults itself, so code that must not know them (a log bundle's
    import) can read case files; what builds labs passes ``lab.faults.known_fault_ids()``
    (:func:`lab.cases.build.load_buildable`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{show(path)}: no such case file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{show(path)}: cannot read the case file ({exc})") from None
    return parse_case(text, show(path), fault_ids)


def parse_case(
    text: str, where: str = "case.yaml", fault_ids: Collection[str] | None = None
) -> Case:
    """Validate a case file's text; ``where`` names it in errors (``fault_ids``: as for
    :func:`load_case`)."""
    raw = _parse_yaml(text, where)
    try:
        case = Case.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # A misspelt key also leaves its right spelling missing: name the typo first.
        error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc = tuple(part for part in error["loc"] if part != "[key]")
        raise BadInput(f"{where}: {dotted(loc)}: {_plain(error)}{_line(text, loc)}") from None
    check_case(
        case,
        lambda loc, problem: BadInput(f"{where}: {dotted(loc)}: {problem}{_line(text, loc)}"),
        fault_ids,
    )
    return case


def check_case(
    case: Case,
    bad: Callable[[tuple[str | int, ...], str], BadInput],
    fault_ids: Collection[str] | None = None,
) -> None:
    """What one field cannot say alone; ``bad(loc, problem)`` makes the error to raise."""
    names = [vm.name for vm in case.vms]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise bad(("vms", index, "name"), f"{name!r} is declared twice")

    def known_vm(loc: tuple[str | int, ...], vm: str | None) -> None:
        if vm is not None and vm not in names:
            raise bad(loc, f"{vm!r} is not one of the case's VMs ({', '.join(names)})")

    for index, vm in enumerate(case.vms):
        _check_vm(vm, ("vms", index), bad)
    for index, fault in enumerate(case.faults):
        if fault_ids is not None and fault.fault not in fault_ids:
            known = ", ".join(sorted(fault_ids)) or "none"
            raise bad(("faults", index, "fault"), f"unknown fault {fault.fault!r} (known: {known})")
        known_vm(("faults", index, "vm"), fault.vm)
    for index, rule in enumerate(case.nsg.rules):
        loc: tuple[str | int, ...] = ("nsg", "rules", index)
        known_vm((*loc, "vm"), rule.vm)
        for other_index, other in enumerate(case.nsg.rules[:index]):
            overlap = rule.vm is None or other.vm is None or rule.vm == other.vm
            if overlap and other.name.lower() == rule.name.lower():
                raise bad((*loc, "name"), f"{rule.name!r} is also rules[{other_index}]'s name")
            if overlap and other.direction == rule.direction and other.priority == rule.priority:
                raise bad(
                    (*loc, "priority"),
                    f"{rule.priority} is taken by rules[{other_index}] ({rule.direction}): "
                    "Azure refuses two rules with one priority (SecurityRuleConflict)",
                )
    policy = case.backup.policy
    if policy is not None:
        for index, member in enumerate(policy.vms or ()):
            known_vm(("backup", "policy", "vms", index), member)
    symptom = case.symptom
    if symptom is not None:
        known_vm(("symptom", "vm"), symptom.vm)
        if symptom.status == "Failed" and symptom.error_code is None:
            raise bad(("symptom", "error_code"), "a Failed job has an error code: name it")
        if symptom.status == "Completed":
            for field in ("error_code", "message", "sub_task"):
                if getattr(symptom, field) is not None:
                    raise bad(("symptom", field), "a Completed job has none (status: Completed)")


def _check_vm(
    vm: CaseVm, loc: tuple[str | int, ...], bad: Callable[[tuple[str | int, ...], str], BadInput]
) -> None:
    for key in vm.waagent_conf:
        if key in PROXY_KEYS:
            raise bad(
                (*loc, "waagent_conf", key),
                "say the agent's proxy as proxy: {http: ..., where: agent}",
            )
    if vm.agent_service == "crashed" and vm.agent not in CRASHABLE_AGENTS:
        raise bad(
            (*loc, "agent_service"),
            f"'crashed' is built as the stale-agent fault does it (no restart policy, "
            f"SIGKILL), which needs an agent below 2.2.53.1 ({', '.join(CRASHABLE_AGENTS)}); "
            f"agent {vm.agent} has Restart=always: use 'stopped'",
        )
    types = [extension.type.lower() for extension in vm.extensions]
    for index, name in enumerate(types):
        if name in types[:index]:
            raise bad((*loc, "extensions", index, "type"), "this extension is listed twice")


def dump_case(case: Case) -> str:
    """The case as YAML: the schema's key order, defaults left out, maps sorted."""
    data = case.model_dump(mode="json", exclude_defaults=True)
    data["format"] = case.format  # always written, even where it is the only choice
    data = {key: data[key] for key in Case.model_fields if key in data}
    return yaml.safe_dump(
        _sorted_maps(data), sort_keys=False, default_flow_style=False, allow_unicode=True, width=100
    )


# Free-form maps are written in key order, so the same case always reads the same.
_FREE_MAPS = ("waagent_conf", "params", "evidence")


def _sorted_maps(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        items = sorted(value.items()) if key in _FREE_MAPS else value.items()
        return {k: v if key in _FREE_MAPS else _sorted_maps(v, k) for k, v in items}
    if isinstance(value, list):
        return [_sorted_maps(item) for item in value]
    return value


def _parse_yaml(text: str, where: str) -> dict[str, Any]:
    return parse_mapping(text, where, "format, name, vms")


def _line(text: str, loc: tuple[str | int, ...]) -> str:
    where = line_of(text, loc)
    return f" (line {where})" if where else ""


def _plain(error: ErrorDetails) -> str:
    return plain_error(error, Case, PATTERN_MEANING)
