"""The journal: one JSON document per run, the single record every report derives from.

It holds what was asked (item ids, options, time scale, versions) and, per item of the
run (a scenario as written, ``<id>``, or one of its variants, ``<id>@<variant>``: its
scenario, variant and the time scale its lab ran at), each phase's status, output, error
and seconds, the backup jobs and diagnoses as the
platform returned them, and the guests' logs when something failed. JUnit
(:mod:`lab.junit`) and the progress display read these records; nothing else keeps state.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import lab

JOURNAL_FORMAT = 1
OUTPUT_LIMIT = 16_000  # characters kept per phase output (the tail, where failures are)

PhaseStatus = Literal["pending", "running", "passed", "failed", "skipped"]
ScenarioStatus = Literal["pending", "running", "passed", "failed", "interrupted"]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def clip(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """Keep the end of long output: a failing command's last lines say why."""
    if len(text) <= limit:
        return text
    return f"[... {len(text) - limit} characters cut ...]\n" + text[-limit:]


@dataclass
class PhaseRecord:
    name: str
    status: PhaseStatus = "pending"
    output: str = ""
    error: str | None = None
    seconds: float = 0.0
    started_at: str | None = None


@dataclass
class ScenarioRecord:
    id: str
    title: str
    lab: str
    phases: list[PhaseRecord]
    scenario: str = ""
    variant: str = "catalog"
    time_scale: float | None = None
    # The scenario's fidelity.azure_clock: "same", or "lab-only" when its outcome does
    # not hold on Azure's own clock.
    azure_clock: str = "same"
    status: ScenarioStatus = "pending"
    started_at: str | None = None
    finished_at: str | None = None
    seconds: float = 0.0
    kept: bool = False
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    diagnoses: dict[str, dict[str, Any]] = field(default_factory=dict)
    guest_logs: dict[str, dict[str, str]] = field(default_factory=dict)

    def phase(self, name: str) -> PhaseRecord:
        return next(p for p in self.phases if p.name == name)

    @property
    def current_phase(self) -> str | None:
        return next((p.name for p in self.phases if p.status == "running"), None)

    @property
    def failed_phase(self) -> PhaseRecord | None:
        return next((p for p in self.phases if p.status == "failed"), None)

    def to_dict(self) -> dict[str, Any]:
        failed = self.failed_phase
        return {**asdict(self), "failed_phase": failed.name if failed else None}


@dataclass
class Journal:
    input: dict[str, Any]
    scenarios: list[ScenarioRecord]
    started_at: str = field(default_factory=now)
    finished_at: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(s.status == "passed" for s in self.scenarios)

    @property
    def status(self) -> str:
        if any(s.status == "interrupted" for s in self.scenarios):
            return "interrupted"
        return "passed" if self.passed else "failed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": JOURNAL_FORMAT,
            "input": self.input,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "seconds": round(self.seconds, 3),
            "status": self.status,
            "scenarios": [s.to_dict() for s in self.scenarios],
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def run_input(
    scenario_ids: list[str], options: dict[str, Any], time_scale: float, **versions: str
) -> dict[str, Any]:
    """The journal's ``input``: enough to tell two runs apart and to repeat one."""
    return {
        "scenarios": scenario_ids,
        "options": options,
        "time_scale": time_scale,
        "versions": {
            "snaplab": lab.__version__,
            "python": sys.version.split()[0],
            "os": platform.platform(),
            **versions,
        },
    }
