"""The checks, the diagnosis and the backup service know nothing of the faults.

A check that passes because it knows which fault was injected proves nothing, and a
backup service that fails because a scenario said so is a flag, not a failure. So this
walks the source (``ast``, nothing is imported or run) of ``checks/``,
``lab/diagnosis/`` and ``lab/platform/backup/`` and every repository module they import,
transitively, and fails if any of them imports the fault mechanisms (``lab.faults``),
the scenario loader or schema (``lab.scenario``, ``lab.scenario_schema``) or whatever
runs scenarios (``lab.runner``), or names a scenario file, the ``scenarios/`` folder, or
a fault's parameters (``FaultTarget``, ``.params``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOTS = ("checks", "lab/diagnosis", "lab/platform/backup")
PACKAGES = ("lab", "checks")  # what "within the repository" means for an import

# Modules (and their submodules) that hold the faults or the scenarios.
FORBIDDEN_MODULES = ("lab.faults", "lab.scenario", "lab.scenario_schema", "lab.runner")
# Names that only fault or scenario code has a reason to mention.
FORBIDDEN_NAMES = ("FaultTarget", "FaultError", "ScenarioFile")
FORBIDDEN_ATTRIBUTES = ("params",)
FORBIDDEN_TEXT = ("scenario.yaml", "scenarios/")
# Text that names a scenario folder without reading it: the diagnosis tells a person
# which runbook to apply (a path to print, never opened by the code).
ALLOWED_TEXT = {("lab.diagnosis.model", "runbook_path")}


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.what}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_path(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def in_repo(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def forbidden(name: str, banned: tuple[str, ...] = FORBIDDEN_MODULES) -> bool:
    return any(name == m or name.startswith(m + ".") for m in banned)


def resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``from ... import`` names (relative imports included)."""
    if node.level == 0:
        return node.module or ""
    parts = module.split(".")
    keep = len(parts) - node.level + (1 if is_package else 0)
    base = parts[:keep]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, tree: ast.Module) -> Iterator[tuple[str, int]]:
    """Every module an import statement names; ``from a import b`` yields ``a`` and
    ``a.b`` (b may be a submodule)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = resolve_from(module, is_package, node)
            yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            target = node.args[0] if node.args else None
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                yield target.value, node.lineno


def _is_dynamic_import(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("import_module", "__import__")


def _enclosing_functions(tree: ast.Module) -> dict[int, str]:
    """Line -> name of the innermost function holding it (for the allow-list)."""
    owner: dict[int, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if hasattr(inner, "lineno"):
                    owner.setdefault(inner.lineno, node.name)
    return owner


def text_violations(module: str, tree: ast.Module) -> Iterator[Violation]:
    owner = _enclosing_functions(tree)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            yield Violation(module, node.lineno, f"names {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            yield Violation(module, node.lineno, f"reads .{node.attr} (a fault's parameters)")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and any(text in node.value for text in FORBIDDEN_TEXT)
            and (module, owner.get(node.lineno, "")) not in ALLOWED_TEXT
        ):
            yield Violation(module, node.lineno, f"names scenario files: {node.value!r}")


def walk(
    roots: tuple[str, ...] = ROOTS, banned: tuple[str, ...] = FORBIDDEN_MODULES
) -> tuple[set[str], list[Violation]]:
    """Every repository module reachable from ``roots`` and what is wrong with them."""
    queue = [module_name(p) for root in roots for p in sorted((ROOT / root).rglob("*.py"))]
    seen: set[str] = set()
    violations: list[Violation] = []
    while queue:
        module = queue.pop()
        if module in seen:
            continue
        seen.add(module)
        path = module_path(module)
        if path is None:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        violations.extend(text_violations(module, tree))
        for name, line in imports_of(module, path, tree):
            if not in_repo(name):
                continue
            if forbidden(name, banned):
                violations.append(Violation(module, line, f"imports {name}"))
                continue
            if module_path(name) is not None:
                queue.append(name)
    return seen, violations


def test_checks_diagnosis_and_backup_know_no_fault_or_scenario() -> None:
    seen, violations = walk()
    assert {"checks.registry", "lab.diagnosis.rules", "lab.platform.backup.runner"} <= seen
    assert not violations, "\n".join(str(v) for v in violations)


def test_checks_share_no_constant_with_the_host_slots() -> None:
    """The schedule-storm check observes jobs that waited; it must not know how many
    snapshots the lab's host takes at once (``lab.platform.backup.slots``)."""
    banned = (*FORBIDDEN_MODULES, "lab.platform.backup.slots", "lab.platform.backup.runner")
    _, violations = walk(("checks", "lab/diagnosis"), banned)
    assert not violations, "\n".join(str(v) for v in violations)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from lab.faults import register\n", "imports lab.faults"),
        ("import lab.faults.agent_stopped\n", "imports lab.faults.agent_stopped"),
        ("from lab import scenario\n", "imports lab.scenario"),
        ("from lab.scenario_schema import ScenarioFile\n", "imports lab.scenario_schema"),
        ("import importlib\nimportlib.import_module('lab.faults.base')\n", "imports lab.faults"),
        ("def f(t):\n    return t.params['policy']\n", "reads .params"),
        ("P = 'scenarios/schedule-storm/scenario.yaml'\n", "names scenario files"),
    ],
)
def test_the_walk_catches(tmp_path: Path, source: str, expected: str) -> None:
    """The detector itself: each kind of dependence is reported."""
    tree = ast.parse(source)
    path = tmp_path / "probe.py"
    found = [str(v) for v in text_violations("checks.probe", tree)]
    found += [
        f"imports {name}"
        for name, _ in imports_of("checks.probe", path, tree)
        if in_repo(name) and forbidden(name)
    ]
    assert any(expected in item for item in found), found
