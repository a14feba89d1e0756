"""The phase engine with fake drivers: recording, skipping, teardown, keep, Ctrl-C, parallel."""

from __future__ import annotations

import _thread
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lab.errors import LabExists, PlatformError
from lab.provision.labels import LAB_NAME_PATTERN
from lab.runner import (
    PHASES,
    Keep,
    RunContext,
    RunOptions,
    ScenarioFailed,
    lab_name,
    new_record,
    prepare_lab,
    run_catalog,
    run_scenario,
)
from lab.scenario import Scenario
from tests.unit.test_runner_fakes import FakeDrivers, _job, scenario

PHASE_NAMES = [
    "provision",
    "warmup",
    "inject",
    "backup-fails",
    "diagnose",
    "runbook",
    "backup-completes",
    "verify",
    "teardown",
]


def _run(
    drivers: FakeDrivers, chosen: Scenario | None = None, keep: Keep = "never"
) -> tuple[RunContext, Any]:
    chosen = chosen or scenario()
    ctx = RunContext(
        scenario=chosen,
        lab="rn-demo",
        drivers=drivers,
        record=new_record(chosen, "rn-demo"),
        keep=keep,
    )
    return ctx, run_scenario(ctx)


def _statuses(record: Any) -> dict[str, str]:
    return {p.name: p.status for p in record.phases}


def test_the_lifecycle_is_data_in_order() -> None:
    assert [p.name for p in PHASES] == PHASE_NAMES
    assert [p.name for p in PHASES if p.final] == ["teardown"]


def test_a_scenario_that_behaves_passes_every_phase_and_records_what_it_saw() -> None:
    drivers = FakeDrivers()
    _, record = _run(drivers)
    assert record.status == "passed"
    assert set(_statuses(record).values()) == {"passed"}
    assert drivers.names() == [
        "up", "inject", "backup", "diagnose", "run_runbook", "backup", "diagnose", "down"
    ]  # fmt: skip
    assert record.jobs["backup-fails"]["error_code"] == "GuestAgentSnapshotTaskStatusError"
    assert record.jobs["backup-completes"]["status"] == "Completed"
    assert record.diagnoses["diagnose"]["causes"][0]["id"] == "demo"
    assert record.diagnoses["verify"]["causes"] == []
    assert record.phase("inject").output == 'demo-fault applied to vm1 {"level": 1}'
    assert "step output" in record.phase("runbook").output
    assert record.phase("teardown").output == "lab rn-demo removed"
    assert record.guest_logs == {}
    assert all(p.seconds >= 0 and p.started_at for p in record.phases)


def test_a_failed_phase_is_recorded_later_ones_skipped_and_teardown_runs() -> None:
    drivers = FakeDrivers(jobs=[_job("Completed")])
    _, record = _run(drivers)
    assert record.status == "failed"
    assert record.failed_phase.name == "backup-fails"
    assert record.failed_phase.error == (
        "expected the backup to fail with GuestAgentSnapshotTaskStatusError, but it completed"
    )
    assert "job-completed" in record.failed_phase.output
    statuses = _statuses(record)
    assert [statuses[n] for n in PHASE_NAMES] == [
        "passed", "passed", "passed", "failed",
        "skipped", "skipped", "skipped", "skipped", "passed",
    ]  # fmt: skip
    assert record.phase("diagnose").output == "skipped: backup-fails failed"
    assert "run_runbook" not in drivers.names() and drivers.names()[-1] == "down"
    assert record.guest_logs["vm1"]["waagent.log"] == "agent log tail"


def test_a_backup_failing_with_another_code_names_both() -> None:
    drivers = FakeDrivers(jobs=[_job("Failed", "UserErrorGuestAgentStatusUnavailable")])
    _, record = _run(drivers)
    assert record.failed_phase.error == (
        "expected the backup to fail with GuestAgentSnapshotTaskStatusError, but it failed "
        "with UserErrorGuestAgentStatusUnavailable: message"
    )


def test_a_backup_past_its_deadline_fails_the_phase() -> None:
    drivers = FakeDrivers(jobs=[_job("InProgress")])
    _, record = _run(drivers)
    assert record.failed_phase.error == (
        "backup job job-inprogress did not end within 180 s (still InProgress)"
    )
    assert ("backup", ("rn-demo", 180.0)) in drivers.calls


def test_a_diagnosis_that_names_the_wrong_cause() -> None:
    _, record = _run(FakeDrivers(), scenario(diagnosis=["demo", "other"]))
    assert record.failed_phase.name == "diagnose"
    assert record.failed_phase.error == (
        "the diagnosis named [demo], expected exactly [demo, other] (missing other)"
    )
    assert "demo: saw demo" in record.failed_phase.output


def test_a_runbook_that_does_not_clear_the_cause_fails_verify() -> None:
    jobs = [_job("Failed", "GuestAgentSnapshotTaskStatusError"), _job("Completed")]
    drivers = FakeDrivers(causes_after_runbook=("demo",), jobs=jobs)
    _, record = _run(drivers)
    assert record.failed_phase.name == "verify"
    assert record.failed_phase.error == "after the runbook the diagnosis still names [demo]"


def test_a_failing_runbook_step_is_reported_with_its_line() -> None:
    _, record = _run(FakeDrivers(runbook_exit=2))
    assert record.failed_phase.name == "runbook"
    assert record.failed_phase.error == (
        "scenarios/demo/runbook.md: step at line 3 (bash guest) exited 2: step output"
    )
    assert "-> exit 2" in record.failed_phase.output


def test_errors_from_drivers_are_recorded_not_raised() -> None:
    drivers = FakeDrivers(fail_in={"inject": PlatformError("fabric control API down")})
    _, record = _run(drivers)
    assert record.failed_phase.name == "inject"
    assert record.failed_phase.error == "fabric control API down"
    assert drivers.names()[-1] == "down"


def test_a_bug_in_a_collaborator_is_recorded_with_its_traceback() -> None:
    drivers = FakeDrivers(fail_in={"diagnose": RuntimeError("boom")})
    _, record = _run(drivers)
    assert record.failed_phase.error == "RuntimeError: boom"
    assert "Traceback" in record.failed_phase.output


def test_warmup_backup_must_complete() -> None:
    drivers = FakeDrivers(jobs=[_job("Failed", "BackUpOperationFailed")])
    _, record = _run(drivers, scenario(warmup=True))
    assert record.failed_phase.name == "warmup"
    assert record.jobs["warmup"]["status"] == "Failed"
    assert "inject" not in drivers.names()


def test_no_warmup_asked_passes_without_a_backup() -> None:
    drivers = FakeDrivers()
    _, record = _run(drivers)
    assert record.phase("warmup").output == "no warm-up backup asked (warmup_backup: false)"
    assert "warmup" not in record.jobs


def test_a_failed_provision_still_tears_down_what_up_left() -> None:
    drivers = FakeDrivers(fail_in={"up": PlatformError("fabric exited")})
    _, record = _run(drivers)
    assert record.failed_phase.name == "provision"
    assert drivers.names() == ["up", "down"]
    assert record.guest_logs == {}


def test_someone_elses_lab_with_the_same_name_is_never_removed() -> None:
    drivers = FakeDrivers(fail_in={"up": LabExists("--lab 'rn-demo': already exists")})
    _, record = _run(drivers)
    assert record.failed_phase.name == "provision"
    assert "down" not in drivers.names()
    assert record.phase("teardown").status == "skipped"


@pytest.mark.parametrize(
    ("keep", "fails", "removed"),
    [
        ("never", False, True),
        ("never", True, True),
        ("failed", False, True),
        ("failed", True, False),
        ("always", False, False),
        ("always", True, False),
    ],
)
def test_keep_policies(keep: Keep, fails: bool, removed: bool) -> None:
    drivers = FakeDrivers(jobs=[_job("Completed")] if fails else None)
    _, record = _run(drivers, keep=keep)
    assert ("down" in drivers.names()) is removed
    assert record.kept is (not removed)
    assert record.status == ("failed" if fails else "passed")
    teardown = record.phase("teardown")
    if removed:
        assert teardown.status == "passed"
    else:
        assert teardown.status == "skipped"
        assert teardown.output == (
            f"lab rn-demo kept (--keep {keep}); remove it with `snaplab down rn-demo`"
        )


def test_ctrl_c_in_a_phase_tears_down_even_when_keeping() -> None:
    drivers = FakeDrivers(fail_in={"diagnose": KeyboardInterrupt()})
    ctx, record = _run(drivers, keep="always")
    assert ctx.cancel.is_set()
    assert record.status == "interrupted"
    assert record.phase("diagnose").error == "interrupted (Ctrl-C)"
    assert record.phase("runbook").output == "skipped: diagnose failed"
    assert drivers.names()[-1] == "down"


def test_lab_names_fit_the_lab_name_rule() -> None:
    assert lab_name("run", "agent-stopped") == "run-agent-stopped"
    long = lab_name("run", "extension-update-failed")
    assert LAB_NAME_PATTERN.match(long) and len(long) <= 20
    assert long.startswith("run-extension-")
    assert long == lab_name("run", "extension-update-failed")
    assert long != lab_name("run", "extension-update-fails")


def _catalog(count: int) -> list[Scenario]:
    return [scenario(f"demo{i}", diagnosis=["demo"]) for i in range(count)]


def test_parallel_runs_at_most_n_labs_at_once_and_all_pass() -> None:
    drivers = FakeDrivers(up_seconds=0.2)
    journal = run_catalog(_catalog(5), drivers, RunOptions(parallel=2, lab_prefix="rn"))
    assert [s.status for s in journal.scenarios] == ["passed"] * 5
    assert drivers.most_at_once == 2
    assert drivers.live_labs == set()
    assert [s.lab for s in journal.scenarios] == [f"rn-demo{i}" for i in range(5)]
    assert drivers.calls[0] == ("prepare", ("2.7.3.0",))
    assert journal.passed and journal.status == "passed"


def test_one_failing_scenario_fails_the_run_but_not_the_others() -> None:
    failing = scenario("bad", diagnosis=["demo", "other"])
    journal = run_catalog([*_catalog(2), failing], FakeDrivers(), RunOptions(parallel=3))
    assert [s.status for s in journal.scenarios] == ["passed", "passed", "failed"]
    assert not journal.passed and journal.status == "failed"


@pytest.fixture
def python_ctrl_c() -> Iterator[None]:
    """Ctrl-C as a plain Python process has it: ``_thread.interrupt_main`` runs whatever
    SIGINT handler the process holds, and one left by code that ran earlier in the same
    pytest process (a whole CI session shares it) would swallow the simulated Ctrl-C
    (seen once in CI: the run then lasted its full 20 s)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("python_ctrl_c")
def test_ctrl_c_during_a_parallel_run_tears_every_lab_down() -> None:
    started = threading.Event()

    def slow_backup(cancel: threading.Event) -> None:
        if not started.is_set():
            started.set()
            threading.Timer(0.1, _thread.interrupt_main).start()
        cancel.wait(5)

    drivers = FakeDrivers(on_backup=slow_backup, up_seconds=0.05)
    began = time.monotonic()
    journal = run_catalog(_catalog(4), drivers, RunOptions(parallel=2, keep="always"))
    assert time.monotonic() - began < 5
    assert journal.status == "interrupted"
    statuses = [s.status for s in journal.scenarios]
    assert statuses == ["interrupted"] * 4
    assert drivers.live_labs == set()
    assert not [t for t in threading.enumerate() if t.name.startswith("snaplab-run-")]
    assert drivers.names().count("up") == 2
    assert drivers.names().count("down") == 2
    not_run = journal.scenarios[3]
    assert not_run.started_at is None
    assert {p.status for p in not_run.phases} == {"skipped"}


def test_prepare_lab_provisions_and_breaks_without_teardown() -> None:
    drivers = FakeDrivers()
    messages: list[str] = []
    roster = prepare_lab(drivers, scenario(warmup=True), "rn-hands-on", messages.append)
    assert roster.lab == "rn-hands-on"
    assert drivers.names() == ["up", "backup", "inject"]
    assert messages == [
        "bringing up lab rn-hands-on (1 VM(s))",
        "running the warm-up backup",
        "breaking the scenario's VM(s)",
    ]


def test_prepare_lab_removes_the_lab_when_a_step_fails() -> None:
    drivers = FakeDrivers(fail_in={"inject": PlatformError("guest refused")})
    with pytest.raises(ScenarioFailed) as caught:
        prepare_lab(drivers, scenario(), "rn-hands-on", lambda _: None)
    assert str(caught.value) == (
        "scenario demo: inject failed: guest refused (lab rn-hands-on removed)"
    )
    assert drivers.names()[-1] == "down"


def test_prepare_lab_never_removes_an_existing_lab() -> None:
    drivers = FakeDrivers(fail_in={"up": LabExists("--lab 'rn-x': exists")})
    with pytest.raises(ScenarioFailed, match=r"provision failed: --lab 'rn-x': exists$"):
        prepare_lab(drivers, scenario(), "rn-x", lambda _: None)
    assert "down" not in drivers.names()
