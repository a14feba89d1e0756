"""A backup job against the customer's symptom (lab.cases.compare)."""

from __future__ import annotations

from typing import Any

from lab.cases.compare import compare, same_message
from lab.cases.model import Symptom

TIMEOUT = "GuestAgentSnapshotTaskStatusError"
TIMEOUT_2016 = (
    "Could not communicate with the VM agent for snapshot status - Snapshot VM sub-task timed out"
)


def job(
    status: str = "Failed",
    code: str | None = TIMEOUT,
    failed: str | None = "Take Snapshot",
    message: str | None = TIMEOUT_2016,
) -> dict[str, Any]:
    subtasks = [
        {"name": "Take Snapshot", "status": "Failed" if failed else "Completed", "seconds": 5700.0},
        {"name": "Transfer data to vault", "status": "NotStarted", "seconds": None},
    ]
    return {
        "job_id": "j1",
        "vm": "vm1",
        "status": status,
        "error_code": code,
        "error_message": message,
        "subtasks": subtasks,
        "seconds": 5700.0,
    }


def test_match_on_every_field() -> None:
    symptom = Symptom(error_code=TIMEOUT, message=TIMEOUT_2016, sub_task="Take Snapshot")
    result = compare(symptom, job())
    assert result.matched
    document = result.to_json()
    assert document["result"] == "match" and document["differences"] == []
    assert document["symptom"]["error_code"] == TIMEOUT
    assert document["outcome"]["sub_task"] == "Take Snapshot"
    assert result.summary().startswith("match:")


def test_a_message_without_the_2016_tail_matches() -> None:
    symptom = Symptom(
        error_code=TIMEOUT, message="could not communicate with the VM agent for snapshot status"
    )
    assert compare(symptom, job()).matched


def test_differs_names_each_field() -> None:
    symptom = Symptom(
        error_code="ExtensionSnapshotFailedNoNetwork",
        message="Snapshot failed",
        sub_task="Transfer data to vault",
    )
    result = compare(symptom, job())
    assert not result.matched
    fields = {d.field: (d.expected, d.actual) for d in result.differences}
    assert fields["error_code"] == ("ExtensionSnapshotFailedNoNetwork", TIMEOUT)
    assert fields["message"] == ("Snapshot failed", TIMEOUT_2016)
    assert fields["sub_task"] == ("Transfer data to vault", "Take Snapshot")
    assert result.to_json()["result"] == "differs"
    assert "error_code: the case says 'ExtensionSnapshotFailedNoNetwork'" in result.summary()


def test_completed_job_against_a_failure() -> None:
    result = compare(Symptom(error_code=TIMEOUT), job("Completed", None, None, None))
    assert [d.field for d in result.differences] == ["status", "error_code"]


def test_completed_symptom_matches_a_completed_job() -> None:
    assert compare(Symptom(status="Completed"), job("Completed", None, None, None)).matched


def test_pre_check_failure_has_no_sub_task() -> None:
    pre_check = job(code="UserErrorGuestAgentStatusUnavailable", failed=None)
    pre_check["subtasks"][0]["status"] = "NotStarted"
    result = compare(
        Symptom(error_code="UserErrorGuestAgentStatusUnavailable", sub_task="Take Snapshot"),
        pre_check,
    )
    assert [(d.field, d.actual) for d in result.differences] == [("sub_task", None)]


def test_same_message_edges() -> None:
    assert same_message("A  b.", "a b")
    assert not same_message("a b", None)
    assert not same_message("a", "b")
