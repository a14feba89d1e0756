"""A backup job's outcome against the symptom the customer saw: match, or how it differs.

What is compared is what a customer can tell an engineer from the portal's job view: the
job's status, its error code, its message and the sub-task that failed. The message
matches when one is the other with a tail left off (case and spacing aside): Azure's 2016
message ends " - Snapshot VM sub-task timed out", later ones do not, and customers quote
either. Times (``started``, ``duration_minutes``) are recorded, not compared: a lab's
Azure clock is its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lab.cases.model import Symptom


@dataclass(frozen=True)
class Difference:
    """One field of the symptom the job did not show."""

    field: str
    expected: str | None
    actual: str | None

    def describe(self) -> str:
        return f"{self.field}: the case says {self.expected!r}, the lab's job {self.actual!r}"


@dataclass(frozen=True)
class Comparison:
    """The verdict, with both sides, as ``case run --json`` prints it."""

    differences: tuple[Difference, ...]
    symptom: dict[str, Any]
    outcome: dict[str, Any]

    @property
    def matched(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        if self.matched:
            shown = self.outcome.get("error_code") or "no error"
            return (
                f"match: the lab's backup {self.outcome.get('status')} ({shown}), as the case says"
            )
        return "differs: " + "; ".join(d.describe() for d in self.differences)

    def to_json(self) -> dict[str, Any]:
        return {
            "result": "match" if self.matched else "differs",
            "differences": [
                {"field": d.field, "expected": d.expected, "actual": d.actual}
                for d in self.differences
            ],
            "symptom": self.symptom,
            "outcome": self.outcome,
        }


def outcome_of(job: Mapping[str, Any]) -> dict[str, Any]:
    """What of a job (the fabric's or the vault's JSON) a symptom is compared with."""
    failed = [s.get("name") for s in job.get("subtasks", []) if s.get("status") == "Failed"]
    return {
        "job_id": job.get("job_id"),
        "vm": job.get("vm"),
        "status": job.get("status"),
        "error_code": job.get("error_code"),
        "message": job.get("error_message"),
        "sub_task": failed[0] if failed else None,
        "seconds": job.get("seconds"),
        "subtasks": [
            {"name": s.get("name"), "status": s.get("status"), "seconds": s.get("seconds")}
            for s in job.get("subtasks", [])
        ],
    }


def compare(symptom: Symptom, job: Mapping[str, Any]) -> Comparison:
    """Compare the job with the symptom, field by field the symptom names."""
    outcome = outcome_of(job)
    differences: list[Difference] = []

    def differ(field: str, expected: str | None, actual: Any) -> None:
        differences.append(Difference(field, expected, None if actual is None else str(actual)))

    if outcome["status"] != symptom.status:
        differ("status", symptom.status, outcome["status"])
    if symptom.error_code is not None and outcome["error_code"] != symptom.error_code:
        differ("error_code", symptom.error_code, outcome["error_code"])
    if symptom.message is not None and not same_message(symptom.message, outcome["message"]):
        differ("message", symptom.message, outcome["message"])
    if symptom.sub_task is not None and outcome["sub_task"] != symptom.sub_task:
        differ("sub_task", symptom.sub_task, outcome["sub_task"])
    return Comparison(
        differences=tuple(differences),
        symptom=symptom.model_dump(mode="json", exclude_none=True),
        outcome=outcome,
    )


def same_message(expected: str, actual: str | None) -> bool:
    """Equal, or one is the other with a tail left off (case and spacing aside)."""
    if actual is None:
        return False
    a, b = _norm(expected), _norm(actual)
    return bool(a) and bool(b) and (a.startswith(b) or b.startswith(a))


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold().rstrip(" .")
