"""A diagnosis: the causes found for one VM, their evidence, and every check result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from checks.result import CheckResult


def runbook_path(cause: str) -> str:
    """Where the runbook for a cause lives, relative to the repository root."""
    return f"scenarios/{cause}/runbook.md"


@dataclass(frozen=True)
class Cause:
    id: str
    evidence: tuple[str, ...]

    @property
    def runbook(self) -> str:
        return runbook_path(self.id)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "evidence": list(self.evidence), "runbook": self.runbook}


@dataclass(frozen=True)
class Diagnosis:
    vm: str
    causes: tuple[Cause, ...]
    checks: tuple[CheckResult, ...]

    @property
    def cause_ids(self) -> tuple[str, ...]:
        return tuple(cause.id for cause in self.causes)

    @property
    def healthy(self) -> bool:
        return not self.causes

    def to_json(self) -> dict[str, Any]:
        return {
            "vm": self.vm,
            "causes": [cause.to_json() for cause in self.causes],
            "checks": [check.to_json() for check in self.checks],
        }
