"""Variants with fake drivers: parsing, expansion, per-lab scale, the without-fix lifecycle."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest

import lab.runner.drivers
from lab.errors import BadInput
from lab.platform.roster import Roster
from lab.provision import containers
from lab.provision.labels import LAB_NAME_PATTERN
from lab.provision.spec import LabSpec, lab_spec
from lab.runner import (
    CATALOG,
    PHASES,
    WITHOUT_FIX_PHASES,
    DockerDrivers,
    Phase,
    PhaseSkipped,
    RunContext,
    RunItem,
    RunOptions,
    Variant,
    lab_name,
    new_record,
    parse_variant,
    plan_run,
    run_catalog,
    run_scenario,
)
from tests.unit.test_runner_fakes import (
    SCENARIO_YAML,
    FakeDrivers,
    FakeFault,
    _job,
    fake_fault,
    scenario,
    write_scenario,
)

__all__ = ["fake_fault"]

NEW_AGENT = {
    "agent": "2.12.0.2",
    "expect": {"backup_error": "UserErrorGuestAgentStatusUnavailable", "diagnosis": ["other"]},
}


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "variant", "name"),
    [
        ("catalog", Variant("catalog"), "catalog"),
        ("without-fix", Variant("without-fix"), "without-fix"),
        ("scale=60", Variant("scale", scale=60.0), "scale=60"),
        ("scale=2.5", Variant("scale", scale=2.5), "scale=2.5"),
        ("agent=2.12.0.2", Variant("agent", agent="2.12.0.2"), "agent=2.12.0.2"),
        ("agents", Variant("agents"), "agents"),
        ("round-trip", Variant("round-trip"), "round-trip"),
    ],
)
def test_variant_texts(text: str, variant: Variant, name: str) -> None:
    assert parse_variant(text, "--variant") == variant
    assert variant.name == name


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("fast", "unknown variant 'fast' (expected catalog, without-fix, scale=N, "),
        ("scale", "unknown variant 'scale' (expected"),
        ("scale=0", "the time scale must be a positive number, got '0'"),
        ("scale=-3", "the time scale must be a positive number, got '-3'"),
        ("scale=fast", "the time scale must be a positive number, got 'fast'"),
        ("scale=inf", "the time scale must be a positive number, got 'inf'"),
        ("agent=9.9", "unknown agent version '9.9' (known: 2.2.47, "),
        ("without-fix=1", "unknown variant 'without-fix=1'"),
        ("round-trip=1", "unknown variant 'round-trip=1'"),
        ("roundtrip", "unknown variant 'roundtrip' (expected catalog, "),
    ],
)
def test_bad_variant_text_is_one_line(text: str, problem: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_variant(text, f"--variant {text!r}")
    assert str(caught.value).startswith(f"--variant {text!r}: {problem}")
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- planning a run


@pytest.fixture
def catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_fault: FakeFault) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SNAPLAB_TIME_SCALE", raising=False)
    root = tmp_path / "scenarios"
    monkeypatch.setenv("SNAPLAB_SCENARIOS_DIR", str(root))
    diagnosis = "diagnosis: [demo]"
    write_scenario(root, "demo")
    other = SCENARIO_YAML.replace("id: demo", "id: other").replace(diagnosis, "diagnosis: [other]")
    other += (
        "agent_variants:\n"
        "  - agent: 2.12.0.2\n"
        "    expect: {backup_error: UserErrorGuestAgentStatusUnavailable, diagnosis: [other]}\n"
        "  - agent: 2.2.47\n"
        "    expect: {backup_error: GuestAgentSnapshotTaskStatusError, diagnosis: [demo]}\n"
    )
    write_scenario(root, "other", other)
    return root


def _ids(items: list[RunItem]) -> list[str]:
    return [item.id for item in items]


@pytest.mark.usefixtures("catalog")
def test_default_is_every_scenario_as_catalog() -> None:
    items = plan_run((), ())
    assert _ids(items) == ["demo", "other"]
    assert {i.variant for i in items} == {CATALOG}
    assert {i.time_scale for i in items} == {240.0}
    assert all(i.phases == PHASES for i in items)


@pytest.mark.usefixtures("catalog")
def test_variant_options_apply_to_every_listed_scenario_and_singles_add_items() -> None:
    items = plan_run(
        ("demo", "other@scale=60", "demo@without-fix"), ("catalog", "without-fix", "scale=60")
    )
    assert _ids(items) == [
        "demo",
        "demo@without-fix",
        "demo@scale=60",
        "other@scale=60",
    ]
    assert items[1].phases == WITHOUT_FIX_PHASES
    assert [i.time_scale for i in items] == [240.0, 240.0, 60.0, 60.0]


@pytest.mark.usefixtures("catalog")
def test_variant_options_without_ids_cover_the_catalog() -> None:
    items = plan_run(("demo@scale=30",), ("without-fix",))
    assert _ids(items) == ["demo@without-fix", "other@without-fix", "demo@scale=30"]


@pytest.mark.usefixtures("catalog")
def test_single_items_alone_are_the_whole_run() -> None:
    assert _ids(plan_run(("demo@without-fix", "demo@scale=60"), ())) == [
        "demo@without-fix",
        "demo@scale=60",
    ]


@pytest.mark.usefixtures("catalog")
def test_round_trip_items_run_the_round_trip_lifecycle() -> None:
    (item,) = plan_run(("demo@round-trip",), ())
    assert item.id == "demo@round-trip"
    assert [p.name for p in item.phases] == [
        "provision",
        "warmup",
        "inject",
        "backup-fails",
        "collect-bundle",
        "diagnose-bundle",
        "other-evidence",
        "import-case",
        "remove-scenario-lab",
        "case-backup-fails",
        "teardown",
    ]
    assert [p.name for p in item.phases if p.final] == ["teardown"]
    assert _ids(plan_run(("demo",), ("round-trip", "catalog"))) == ["demo@round-trip", "demo"]


@pytest.mark.usefixtures("catalog")
def test_agents_expand_per_entry_with_their_expectations() -> None:
    items = plan_run((), ("agents",))  # over the catalog: demo has none, other has two
    assert _ids(items) == ["other@agent=2.12.0.2", "other@agent=2.2.47"]
    first = items[0]
    assert [vm.agent for vm in first.scenario.spec.vms] == ["2.12.0.2"]
    assert first.scenario.spec.expect.backup_error == "UserErrorGuestAgentStatusUnavailable"
    assert items[1].scenario.spec.expect.diagnosis == ["demo"]
    assert first.phases == PHASES
    assert _ids(plan_run(("other@agent=2.2.47",), ())) == ["other@agent=2.2.47"]


@pytest.mark.usefixtures("catalog")
@pytest.mark.parametrize(
    ("arguments", "variants", "message"),
    [
        (("demo@agents",), (), "'demo@agents': scenarios/demo/scenario.yaml has no agent_variants"),
        (
            ("demo",),
            ("agent=2.12.0.2",),
            "--variant 'agent=2.12.0.2': scenarios/demo/scenario.yaml has no agent_variants "
            "entry for agent 2.12.0.2",
        ),
        (("demo@fast",), (), "'demo@fast': unknown variant 'fast'"),
        (("@scale=60",), (), "'@scale=60': expected ID@VARIANT"),
        (("nope@scale=60",), (), "unknown scenario 'nope' (known: demo, other)"),
        ((), ("scale=0",), "--variant 'scale=0': the time scale must be a positive number"),
    ],
)
def test_planning_errors(
    arguments: tuple[str, ...], variants: tuple[str, ...], message: str
) -> None:
    with pytest.raises(BadInput) as caught:
        plan_run(arguments, variants)
    assert str(caught.value).startswith(message)


def test_agents_over_a_catalog_without_entries_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_fault: FakeFault
) -> None:
    root = tmp_path / "scenarios"
    monkeypatch.setenv("SNAPLAB_SCENARIOS_DIR", str(root))
    write_scenario(root, "demo")
    with pytest.raises(BadInput, match=r"^--variant 'agents': no scenario of the catalog has"):
        plan_run((), ("agents",))


def test_duplicate_agent_variants_are_refused(catalog: Path) -> None:
    text = (catalog / "other" / "scenario.yaml").read_text().replace("2.2.47", "2.12.0.2")
    (catalog / "other" / "scenario.yaml").write_text(text)
    with pytest.raises(BadInput) as caught:
        plan_run(("other",), ())
    assert str(caught.value) == (
        "scenarios/other/scenario.yaml: agent_variants[1].agent: '2.12.0.2' is listed twice "
        "(line 24)"
    )


def test_agent_variant_expectations_are_checked_like_the_scenarios(catalog: Path) -> None:
    path = catalog / "other" / "scenario.yaml"
    path.write_text(path.read_text().replace("diagnosis: [demo]}", "diagnosis: [nobody]}"))
    with pytest.raises(BadInput) as caught:
        plan_run(("other",), ())
    assert str(caught.value).startswith(
        "scenarios/other/scenario.yaml: agent_variants[1].expect.diagnosis[0]: 'nobody' is not "
        "a scenario id (demo, other)"
    )


# ---------------------------------------------------------------- lab names


def test_variant_labs_fit_the_rule_and_differ() -> None:
    ids = [
        "agent-stopped",
        "agent-stopped@without-fix",
        "agent-stopped@scale=60",
        "agent-stopped@scale=6",
        "stale-agent@agent=2.12.0.2",
        "extension-update-failed@without-fix",
    ]
    names = [lab_name("h4a", i) for i in ids]
    assert names[0] == "h4a-agent-stopped"
    assert all(LAB_NAME_PATTERN.match(n) and len(n) <= 20 for n in names), names
    assert len(set(names)) == len(names)
    assert names[1].startswith("h4a-agent-stop")
    assert lab_name("h4a", ids[2]) == names[2]  # stable


# ---------------------------------------------------------------- the time scale, per lab


def test_each_item_brings_up_its_lab_at_its_own_scale() -> None:
    demo = scenario("demo")
    items = [RunItem(demo, CATALOG, 240.0), RunItem(demo, Variant("scale", scale=60.0), 60.0)]
    drivers = FakeDrivers()
    journal = run_catalog(items, drivers, RunOptions(parallel=2, lab_prefix="rn"))
    first, second = journal.scenarios
    assert (first.id, first.variant, first.time_scale) == ("demo", "catalog", 240.0)
    assert (second.id, second.variant, second.time_scale) == ("demo@scale=60", "scale=60", 60.0)
    assert second.scenario == "demo"
    assert drivers.scales == {first.lab: 240.0, second.lab: 60.0}
    assert first.lab != second.lab
    assert journal.passed
    assert journal.input["scenarios"] == ["demo", "demo@scale=60"]
    # The backup deadline is written for the default scale; a slower clock gets longer.
    backups = [arg for name, arg in drivers.calls if name == "backup"]
    assert sorted(backups) == sorted(
        [(first.lab, 180.0), (first.lab, 180.0)] + [(second.lab, 720.0)] * 2
    )
    assert "time scale 60" in second.phase("provision").output


def test_prepare_runs_once_for_every_items_agents() -> None:
    demo = scenario("demo", agent_variants=[NEW_AGENT])
    items = [RunItem(demo, CATALOG, 240.0), *plan_items(demo, "agents")]
    drivers = FakeDrivers()
    run_catalog(items, drivers, RunOptions(parallel=2))
    assert [c for c in drivers.calls if c[0] == "prepare"] == [("prepare", ("2.12.0.2", "2.7.3.0"))]


def plan_items(chosen: Any, variant: str) -> list[RunItem]:
    from lab.runner.variants import expand

    return expand(chosen, parse_variant(variant, "--variant"), "--variant")


def test_the_fabric_gets_the_labs_scale_not_the_callers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SNAPLAB_TIME_SCALE", "240")
    client = MagicMock()
    roster = Roster(lab="h4u", subnet="10.9.0.0/24", fabric_ip="10.9.0.2", storage_ip="10.9.0.3")
    containers.create_fabric(client, Roster(**{**roster.__dict__, "time_scale": 60.0}), "img")
    environment = client.api.create_container.call_args.kwargs["environment"]
    assert environment["SNAPLAB_TIME_SCALE"] == "60.0"


def test_lab_spec_scale_defaults_to_the_callers_and_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SNAPLAB_TIME_SCALE", "120")
    assert lab_spec("h4s", ()).time_scale == 120.0
    assert lab_spec("h4s", (), time_scale=60.0).time_scale == 60.0
    with pytest.raises(BadInput, match=r"^time scale 0: must be a positive number$"):
        lab_spec("h4s", (), time_scale=0)


def test_docker_drivers_bring_a_lab_up_at_the_items_scale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[LabSpec] = []

    def fake_up(client: Any, spec: LabSpec, report: Any) -> str:
        seen.append(spec)
        return "roster"

    monkeypatch.setattr(lab.runner.drivers.labs, "up", fake_up)
    DockerDrivers(MagicMock()).up("h4d", scenario().spec.vms, 60.0)
    assert seen[0].time_scale == 60.0 and seen[0].name == "h4d"


# ---------------------------------------------------------------- without-fix


WITHOUT_FIX_NAMES = [
    "provision",
    "warmup",
    "inject",
    "backup-fails",
    "runbook-without-fix",
    "backup-still-fails",
    "teardown",
]


def _without_fix(drivers: FakeDrivers, chosen: Any = None) -> Any:
    chosen = chosen or scenario()
    ctx = RunContext(
        scenario=chosen,
        lab="rn-wf",
        drivers=drivers,
        record=new_record(chosen, "rn-wf", WITHOUT_FIX_PHASES, item_id="demo@without-fix"),
    )
    return run_scenario(ctx, WITHOUT_FIX_PHASES)


def _failed(job_id: str, code: str = "GuestAgentSnapshotTaskStatusError") -> dict[str, Any]:
    return {**_job("Failed", code), "job_id": job_id}


def test_without_fix_runs_the_runbook_minus_its_fix_and_the_backup_still_fails() -> None:
    drivers = FakeDrivers()
    record = _without_fix(drivers)
    assert [p.name for p in record.phases] == WITHOUT_FIX_NAMES
    assert record.status == "passed", record.failed_phase
    assert drivers.steps_run == [(3,)]  # the look step ran, the fix step (line 7) did not
    assert drivers.names() == ["up", "inject", "backup", "run_runbook", "backup", "down"]
    still = record.jobs["backup-still-fails"]
    assert still["status"] == "Failed" and still["error_code"]
    assert (
        "without its fix step(s) at line 7: 1 step(s) left"
        in record.phase("runbook-without-fix").output
    )
    assert record.phase("backup-still-fails").output.startswith(
        "without the fix the backup still fails: "
    )
    assert "diagnose" not in drivers.names()


def test_without_fix_fails_when_the_second_backup_completes() -> None:
    drivers = FakeDrivers(jobs=[_failed("job-1"), _job("Completed")])
    record = _without_fix(drivers)
    assert record.status == "failed"
    assert record.failed_phase.name == "backup-still-fails"
    assert record.failed_phase.error == (
        "without its fix step(s) the runbook still cleared the failure: backup job "
        "job-completed completed"
    )


def test_without_fix_fails_when_no_backup_job_runs() -> None:
    drivers = FakeDrivers(jobs=[_failed("job-1"), {}])
    record = _without_fix(drivers)
    assert record.status == "failed"
    assert record.failed_phase.name == "backup-still-fails"
    assert record.failed_phase.error == "no backup job ran"


def test_without_fix_fails_when_the_driver_hands_back_the_first_job() -> None:
    drivers = FakeDrivers(jobs=[_failed("job-1"), _failed("job-1")])
    record = _without_fix(drivers)
    assert record.failed_phase.name == "backup-still-fails"
    assert record.failed_phase.error == (
        "no new backup job ran: job-1 is the job an earlier phase saw"
    )


def test_without_fix_tolerates_a_runbook_that_stops_and_lets_the_backup_decide() -> None:
    drivers = FakeDrivers(runbook_exit=1)
    record = _without_fix(drivers)
    assert record.status == "passed"
    assert (
        "the runbook stopped: step at line 3 (bash guest) exited 1"
        in record.phase("runbook-without-fix").output
    )


def test_without_fix_with_a_different_error_code_still_counts_as_failing() -> None:
    drivers = FakeDrivers(jobs=[_failed("job-1"), _failed("job-2", "BackUpOperationFailed")])
    record = _without_fix(drivers)
    assert record.status == "passed"
    assert record.jobs["backup-still-fails"]["error_code"] == "BackUpOperationFailed"


def test_without_fix_repeats_a_scheduled_failure_with_the_next_scheduled_job() -> None:
    storm = {**_failed("job-1"), "trigger": "Scheduled", "policy": "DailyPolicy"}
    drivers = FakeDrivers(jobs=[storm], scheduled_jobs=[storm, _failed("job-2")])
    record = _without_fix(drivers)
    assert record.status == "passed", record.failed_phase
    call = next(arg for name, arg in drivers.calls if name == "scheduled_backup")
    assert call[:3] == ("rn-wf", "DailyPolicy", ["job-1"])
    assert call[3] == pytest.approx(86400 / 240 + 180)  # one Azure day, then the limit
    assert record.jobs["backup-still-fails"]["job_id"] == "job-2"
    assert drivers.names().count("backup") == 1


def test_without_fix_fails_when_the_schedule_starts_no_job() -> None:
    storm = {**_failed("job-1"), "trigger": "Scheduled", "policy": "DailyPolicy"}
    record = _without_fix(FakeDrivers(jobs=[storm]))
    assert record.failed_phase.name == "backup-still-fails"
    assert record.failed_phase.error == "no backup job ran"


def test_without_fix_with_only_fix_steps_runs_no_step_and_still_backs_up() -> None:
    chosen = scenario()
    from dataclasses import replace

    only_fix = replace(chosen, steps=tuple(s for s in chosen.steps if s.fix))
    drivers = FakeDrivers()
    record = _without_fix(drivers, only_fix)
    assert record.status == "passed"
    assert "run_runbook" not in drivers.names()
    assert drivers.names().count("backup") == 2


def test_a_lifecycle_phase_that_skips_itself_fails_the_run() -> None:
    def skipping(ctx: RunContext) -> str:
        raise PhaseSkipped("nothing to do")

    phases = (PHASES[0], Phase("backup-still-fails", skipping), PHASES[-1])
    chosen = scenario()
    ctx = RunContext(
        scenario=chosen,
        lab="rn-sk",
        drivers=FakeDrivers(),
        record=new_record(chosen, "rn-sk", phases),
    )
    record = run_scenario(ctx, phases)
    assert record.status == "failed"
    assert record.failed_phase.name == "backup-still-fails"
    assert (
        record.failed_phase.error == "backup-still-fails must pass for the run to pass; it skipped"
    )
    assert record.phase("teardown").status == "passed"
