"""``snaplab run`` and ``snaplab inject``: bad input exits 2 before Docker; exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import lab.cli_run
from lab.cli import cli
from lab.cli_run import inject, parse_params, run
from lab.errors import BadInput
from tests.unit.test_runner_fakes import (
    SCENARIO_YAML,
    FakeDrivers,
    FakeFault,
    _job,
    fake_fault,
    write_scenario,
)

__all__ = ["fake_fault"]

NO_DOCKER = {"DOCKER_HOST": "unix:///nonexistent/snaplab-test.sock"}


@pytest.fixture(autouse=True)
def commands() -> Iterator[None]:
    added = [c for c in (run, inject) if c.name not in cli.commands]
    for command in added:
        cli.add_command(command)
    yield
    for command in added:
        cli.commands.pop(command.name or "", None)


@pytest.fixture
def catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_fault: FakeFault) -> Path:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "scenarios"
    monkeypatch.setenv("SNAPLAB_SCENARIOS_DIR", str(root))
    write_scenario(root)
    return root


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), obj={}, env=NO_DOCKER)
    return result.exit_code, result.output


def _one_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


@pytest.mark.usefixtures("catalog")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nope"], "Error: unknown scenario 'nope' (known: demo)"),
        (["run", "--lab-prefix", "Bad_Prefix"], "Error: --lab-prefix 'Bad_Prefix': lowercase"),
        (["inject", "vm1", "no-such-fault"], "Error: unknown fault 'no-such-fault' (known: "),
        (["inject", "vm1", "demo-fault", "--param", "level"], "Error: --param 'level': expected"),
        (["run", "--variant", "fast"], "Error: --variant 'fast': unknown variant 'fast' (expected"),
        (["run", "demo@scale=0"], "Error: 'demo@scale=0': the time scale must be a positive"),
        (["run", "demo@agent=1.0"], "Error: 'demo@agent=1.0': unknown agent version '1.0'"),
        (
            ["run", "demo@agents"],
            "Error: 'demo@agents': scenarios/demo/scenario.yaml has no agent_variants entry",
        ),
        (["run", "nope@without-fix"], "Error: unknown scenario 'nope' (known: demo)"),
        (["run", "--variant", "agents"], "Error: --variant 'agents': no scenario of the catalog"),
    ],
)
def test_bad_input_exits_2_before_docker(args: list[str], message: str) -> None:
    code, output = _invoke(*args)
    assert code == 2
    assert _one_error(output).startswith(message)


def test_a_bad_scenario_file_exits_2_naming_file_and_field(catalog: Path) -> None:
    write_scenario(catalog, "demo", SCENARIO_YAML.replace("backup_seconds: 180", "backup_s: 1"))
    code, output = _invoke("run")
    assert code == 2
    assert _one_error(output) == (
        "Error: scenarios/demo/scenario.yaml: limits.backup_s: unknown field "
        "(expected one of: backup_seconds) (line 20)"
    )


def test_click_rejects_bad_options() -> None:
    assert _invoke("run", "--keep", "sometimes")[0] == 2
    assert _invoke("run", "--parallel", "0")[0] == 2


def test_params_are_read_as_yaml_values() -> None:
    assert parse_params(("percent=95", "on=true", "name=vm-2", "empty=", "ratio=0.5")) == {
        "percent": 95,
        "on": True,
        "name": "vm-2",
        "empty": "",
        "ratio": 0.5,
    }
    with pytest.raises(BadInput, match=r"^--param '=3': expected KEY=VALUE$"):
        parse_params(("=3",))


def _fake_engine(monkeypatch: pytest.MonkeyPatch, drivers: FakeDrivers) -> None:
    monkeypatch.setattr(lab.cli_run.engine, "ensure_engine", lambda report: object())
    monkeypatch.setattr(lab.cli_run.engine, "raise_inotify_limit", lambda: None)
    monkeypatch.setattr(lab.cli_run, "run_drivers", lambda client, names, report: drivers)


@pytest.mark.usefixtures("catalog")
def test_a_passing_run_exits_0_and_writes_both_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_engine(monkeypatch, FakeDrivers())
    code, output = _invoke("run", "--journal", "j/run.json", "--junit", "j/junit.xml")
    assert code == 0, output
    assert "demo" in output and "run passed: 1 scenario(s) in" in output
    journal: dict[str, Any] = json.loads((tmp_path / "j/run.json").read_text())
    assert journal["status"] == "passed"
    assert ET.parse(tmp_path / "j/junit.xml").getroot().find("testsuite/testcase") is not None


@pytest.mark.usefixtures("catalog")
def test_a_failing_run_exits_1_and_names_the_phase(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_engine(monkeypatch, FakeDrivers(jobs=[_job("Completed")]))
    code, output = _invoke("run", "demo", "--keep", "failed")
    assert code == 1
    assert "backup-fails: expected the backup to fail" in output
    assert "(lab run-demo kept)" in output
    assert "run failed: 1 of 1 scenario(s) did not pass in" in output


@pytest.mark.usefixtures("catalog")
def test_variants_are_items_of_one_run_in_the_journal_and_junit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drivers = FakeDrivers()
    _fake_engine(monkeypatch, drivers)
    code, output = _invoke(
        "run", "demo@without-fix", "demo@scale=60", "--parallel", "2", "--journal", "j.json",
        "--junit", "junit.xml",
    )  # fmt: skip
    assert code == 0, output
    journal: dict[str, Any] = json.loads((tmp_path / "j.json").read_text())
    records = {r["id"]: r for r in journal["scenarios"]}
    assert list(records) == ["demo@without-fix", "demo@scale=60"]
    assert records["demo@without-fix"]["jobs"]["backup-still-fails"]["status"] == "Failed"
    assert records["demo@scale=60"]["time_scale"] == 60.0
    assert {r["scenario"] for r in records.values()} == {"demo"}
    assert sorted(drivers.scales.values()) == [60.0, 240.0]
    cases = ET.parse(tmp_path / "junit.xml").getroot().findall("testsuite/testcase")
    assert [c.get("name") for c in cases] == ["demo@without-fix", "demo@scale=60"]
    assert "demo@without-fix" in output and "run passed: 2 scenario(s) in" in output
