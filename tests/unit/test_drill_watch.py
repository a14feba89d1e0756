"""The checker behind ``check-my-solution``: requests taken, checks run, answers written."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lab.drill import guest_check, watch
from lab.drill.check import CheckResult
from lab.drill.state import DrillState, Trainee, create, locked


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SNAPLAB_STATE_DIR", str(tmp_path))
    return tmp_path


def test_a_request_gets_one_check_and_an_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    create(
        DrillState(
            name="dra-w",
            trainees=[
                Trainee(id=t, lab=f"dra-w-{t}", vm="vm1", scenario="agent-stopped")
                for t in ("t01", "t02")
            ],
        )
    )
    requests = {"dra-w-t02": 1}
    answers: list[tuple[str, str]] = []
    checked: list[str] = []

    def take(client: Any, lab: str, vm: str) -> bool:
        if requests.get(lab):
            requests[lab] -= 1
            return True
        return False

    def check(client: Any, name: str, trainee: str) -> CheckResult:
        checked.append(trainee)
        return CheckResult(
            trainee, 1, fixed=False, job_status="Failed", error_code="E", error_message="m"
        )

    monkeypatch.setattr(watch.guest_check, "take_request", take)
    monkeypatch.setattr(
        watch.guest_check, "answer", lambda c, lab, vm, line: answers.append((lab, line))
    )
    monkeypatch.setattr(watch, "run_check", check)
    stop = threading.Event()
    lines: list[str] = []
    server = threading.Thread(target=watch.serve, args=(None, "dra-w", lines.append, stop, 0.01))
    server.start()
    deadline = time.monotonic() + 5
    while not answers and time.monotonic() < deadline:
        time.sleep(0.01)
    with locked("dra-w") as state:
        state.ended_at = "2026-12-07T12:00:00Z"  # the drill ends: the watcher stops by itself
    server.join(5)
    assert not server.is_alive()
    assert checked == ["t02"]
    assert answers == [("dra-w-t02", "t02: not yet (attempt 1): the backup failed: E: m")]
    assert "t02: check asked from the VM" in lines


def test_the_guest_script_only_touches_its_own_files() -> None:
    script = guest_check.SCRIPT
    assert script.startswith("#!/bin/sh")
    for word in ("curl", "wget", "nc ", "/dev/tcp", "ssh"):
        assert word not in script
    assert guest_check.REQUEST in script and guest_check.ANSWER in script
