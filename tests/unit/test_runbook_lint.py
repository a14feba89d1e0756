"""The runbook lint: steps that only work in the lab are refused, with file, line and word."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lab.cli import cli
from lab.errors import BadInput
from lab.runbook_lint import lint_catalog, lint_scenario
from lab.scenario import load_scenario, load_scenarios
from tests.unit.test_runner_fakes import SCENARIO_YAML, FakeFault, fake_fault, write_scenario

__all__ = ["fake_fault"]  # the fixture, imported for pytest

WITH_ARTEFACTS = SCENARIO_YAML.replace(
    "    params: {}\n",
    "    params:\n      unit: nightly-report\n      size_mib: 900\n"
    "    artefacts: [/srv/cache.bin, 1.0.93.0]\n",
)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_fault: FakeFault) -> Path:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "scenarios"
    monkeypatch.setenv("SNAPLAB_SCENARIOS_DIR", str(folder))
    return folder


def _findings(root: Path, steps: str, text: str = WITH_ARTEFACTS) -> list[str]:
    write_scenario(root, "demo", text, f"# Runbook\n\n{steps}\n")
    return [str(f) for f in lint_scenario(load_scenario("demo"))]


def _fence(code: str, info: str = "bash guest fix") -> str:
    return f"```{info}\n{code}\n```\n"


def test_a_step_an_engineer_can_type_on_azure_passes(root: Path) -> None:
    steps = _fence(
        "systemctl restart walinuxagent\njournalctl -u walinuxagent | tail\n"
        "du -sh /var/log/snaplab 2>/dev/null || true"
    ) + _fence(
        'echo "$SNAPLAB_VM"\neval "$(snaplab env)"\nsnaplab ssh "$SNAPLAB_VM" -- true',
        "bash platform",
    )
    assert _findings(root, steps) == []


def test_docker_is_refused_with_its_line(root: Path) -> None:
    found = _findings(root, _fence("true\ndocker inspect snaplab-demo-vm1 | head"))
    assert len(found) == 1
    assert found[0].startswith("scenarios/demo/runbook.md line 5: calls 'docker'")


@pytest.mark.parametrize(
    "code",
    [
        'snaplab nsg list "$SNAPLAB_VM"',
        'snaplab --debug jobs --lab "$SNAPLAB_LAB"',
        'out=$(snaplab backup "$SNAPLAB_VM" --wait)',
    ],
)
def test_lab_only_snaplab_commands_are_refused(root: Path, code: str) -> None:
    found = _findings(root, _fence(code, "bash platform fix"))
    assert len(found) == 1 and "only 'snaplab ssh' and 'snaplab env'" in found[0]


def test_a_python_step_wrapping_snaplab_or_importing_lab_is_refused(root: Path) -> None:
    code = (
        "import subprocess\nfrom lab.azure_sdk import compute_client\n"
        'subprocess.run(["snaplab", "policy", "list"], check=True)'
    )
    found = _findings(root, _fence(code, "python platform fix"))
    assert any("imports the lab's own package" in f and "line 5" in f for f in found)
    assert any("calls 'snaplab policy'" in f and "line 6" in f for f in found)


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("systemctl stop nightly-report", "nightly-report"),
        ("rm -f /srv/cache.bin", "/srv/cache.bin"),
        ("grep 1.0.93.0 /var/log/waagent.log", "1.0.93.0"),
        ("ping -c1 vm1", "vm1"),
    ],
)
def test_names_the_fault_chose_are_refused(root: Path, code: str, name: str) -> None:
    found = _findings(root, _fence(code))
    assert len(found) == 1 and f"names {name!r}, which the fault chose" in found[0]


def test_numbers_and_parts_of_longer_words_are_not_names(root: Path) -> None:
    steps = _fence("head -c 900 /dev/zero >/dev/null\nls /srv/cache.bin.old vm10 || true")
    assert _findings(root, steps) == []


def test_cli_prints_findings_and_exits_1(root: Path) -> None:
    write_scenario(root, "demo", WITH_ARTEFACTS, "# R\n\n" + _fence("docker ps"))
    result = CliRunner().invoke(cli, ["scenario", "check", str(root)], obj={})
    assert result.exit_code == 1
    assert "runbook.md line 4: calls 'docker'" in result.output


def test_cli_passes_a_clean_catalog(root: Path) -> None:
    write_scenario(root, "demo", WITH_ARTEFACTS, "# R\n\n" + _fence("uptime"))
    result = CliRunner().invoke(cli, ["scenario", "check", str(root)], obj={})
    assert result.exit_code == 0, result.output
    assert "1 scenario(s) checked" in result.output


def test_cli_refuses_a_folder_that_does_not_exist(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["scenario", "check", str(tmp_path / "nope")], obj={})
    assert result.exit_code == 2


def test_no_step_may_withdraw_an_extension_release(root: Path) -> None:
    """Withdrawing a release is Microsoft's; a runbook asks for it in a support case."""
    withdraw = 'snaplab extension withdraw "$version"'
    found = _findings(root, _fence(withdraw, "bash platform fix"))
    assert len(found) == 1 and "calls 'snaplab extension'" in found[0]
    with pytest.raises(BadInput, match="does not play Microsoft"):
        _findings(root, _fence(withdraw, "bash publisher fix"))


def test_every_catalog_runbook_works_on_azure() -> None:
    """The catalog itself: no step leans on the lab (what `snaplab scenario check` says)."""
    assert [str(f) for f in lint_catalog(load_scenarios())] == []
