"""``fidelity.azure_clock``: whether a scenario's outcome also holds on Azure's own clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import lab.cli_run
from lab.cli import cli
from lab.cli_run import run
from lab.errors import BadInput
from lab.scenario import load_scenario, load_scenarios
from tests.unit.test_runner_fakes import (
    SCENARIO_YAML,
    FakeDrivers,
    FakeFault,
    fake_fault,
    write_scenario,
)

__all__ = ["fake_fault"]  # the fixture, imported for pytest

FIDELITY = "  lab_stands_in: Nothing.\n"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_fault: FakeFault) -> Path:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "scenarios"
    monkeypatch.setenv("SNAPLAB_SCENARIOS_DIR", str(folder))
    return folder


def with_clock(value: str) -> str:
    assert FIDELITY in SCENARIO_YAML
    return SCENARIO_YAML.replace(FIDELITY, f"{FIDELITY}  azure_clock: {value}\n")


def test_the_default_is_azures_clock(root: Path) -> None:
    write_scenario(root)
    assert load_scenario("demo").spec.fidelity.azure_clock == "same"


@pytest.mark.parametrize("value", ["same", "lab-only"])
def test_both_marks_load(root: Path, value: str) -> None:
    write_scenario(root, "demo", with_clock(value))
    assert load_scenario("demo").spec.fidelity.azure_clock == value


@pytest.mark.parametrize("value", ["sometimes", "true", "'lab only'"])
def test_any_other_mark_is_one_line_naming_the_field(root: Path, value: str) -> None:
    write_scenario(root, "demo", with_clock(value))
    with pytest.raises(BadInput) as caught:
        load_scenario("demo")
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.exit_code == 2
    assert "scenarios/demo/scenario.yaml" in message
    assert "fidelity.azure_clock" in message


def test_the_catalog_marks_only_what_azures_clock_does_not_reproduce(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SNAPLAB_SCENARIOS_DIR", raising=False)
    catalog = {s.id: s.spec.fidelity for s in load_scenarios()}
    lab_only = sorted(i for i, f in catalog.items() if f.azure_clock == "lab-only")
    assert lab_only == ["cpu-saturation"]
    for scenario_id in lab_only:
        first = catalog[scenario_id].same_as_azure.split(". ")[0]
        assert "lab-only" in first and "Azure's clock" in first, scenario_id


def test_run_shows_the_mark_per_scenario_and_in_the_journal(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_scenario(root, "demo", with_clock("lab-only"))
    write_scenario(root, "plain", SCENARIO_YAML.replace("id: demo", "id: plain"))
    monkeypatch.setattr(lab.cli_run.engine, "ensure_engine", lambda report: object())
    monkeypatch.setattr(lab.cli_run.engine, "raise_inotify_limit", lambda: None)
    monkeypatch.setattr(lab.cli_run, "run_drivers", lambda client, names, report: FakeDrivers())
    added = run.name not in cli.commands
    if added:
        cli.add_command(run)
    try:
        result = CliRunner().invoke(cli, ["run", "demo", "plain", "--journal", "j.json"], obj={})
    finally:
        if added:
            cli.commands.pop(run.name or "", None)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert "[lab-only: not Azure's clock]" in lines["demo"]
    assert "lab-only" not in lines["plain"]
    journal = json.loads((tmp_path / "j.json").read_text())
    clocks = {r["id"]: r["azure_clock"] for r in journal["scenarios"]}
    assert clocks == {"demo": "lab-only", "plain": "same"}
