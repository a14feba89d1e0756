"""Bad input never reaches Docker: one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from lab.cli import cli


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), obj={}, env=env)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["up", "--vm", "vm1:agent=9.9.9"], "unknown agent version '9.9.9'"),
        (["up", "--vm", "vm1:agnt=2.7.3.0"], "unknown option 'agnt=2.7.3.0'"),
        (["up", "--vm", "VM_1"], "--vm 'VM_1': VM name must be"),
        (["up", "--vm", "vm1", "--vm", "vm1"], "--vm 'vm1': VM named twice"),
        (["up", "--lab", "Bad Name"], "--lab 'Bad Name': lab name must be"),
        (["down", "somelab", "--all"], "give a LAB or --all, not both"),
        (["up", "--bogus"], "--bogus"),
        (["up", "--scenario", "no-such-scenario"], "unknown scenario 'no-such-scenario'"),
        (["up", "--scenario", "agent-stopped", "--vm", "vm1"], "give --scenario or --vm"),
        (["up", "--scenario", "agent-stopped", "--lab", "Bad"], "--lab 'Bad'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: list[str], fragment: str) -> None:
    code, output = _run(*args)
    assert code == 2
    assert fragment in output
    assert "Traceback" not in output


def test_unreachable_docker_engine_is_exit_2_and_not_started() -> None:
    env = {"DOCKER_HOST": "unix:///nonexistent/snaplab-test.sock"}
    for args in (["status"], ["down", "--all"], ["up", "--lab", "nodocker"]):
        code, output = _run(*args, env=env)
        assert code == 2, output
        lines = [line for line in output.splitlines() if line.startswith("Error:")]
        assert len(lines) == 1 and "Docker engine" in lines[0]
        assert "Traceback" not in output
