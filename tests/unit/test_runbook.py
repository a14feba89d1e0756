"""Runbooks: which fences run where, and how a step's failure is reported."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from lab.errors import BadInput
from lab.provision.ssh_client import SshTarget
from lab.provision.ssh_keys import LabSshFiles
from lab.runbook import (
    Command,
    Step,
    StepPlace,
    command_for,
    execute_command,
    parse_runbook,
    platform_env,
    run_steps,
)
from lab.scenario import scenarios_dir

RUNBOOK = """\
# A runbook

Shown only:

```
no info string
```

```bash
echo shown, not run
```

```console
$ echo shown
```

    indented code is shown

1. In a list:

   ```bash guest
   echo first
   ```

~~~bash guest vm=vm2
echo second
~~~

```bash platform
snaplab status "$SNAPLAB_LAB"
```

```python platform
print("fourth")
```
"""


def test_only_marked_fences_are_steps_with_their_lines() -> None:
    steps = parse_runbook(RUNBOOK, "runbook.md")
    assert [(s.line, s.kind, s.language, s.vm) for s in steps] == [
        (21, "guest", "bash", None),
        (25, "guest", "bash", "vm2"),
        (29, "platform", "bash", None),
        (33, "platform", "python", None),
    ]
    assert steps[0].code == "echo first\n"
    assert steps[3].code == 'print("fourth")\n'


def test_the_canonical_runbook_has_guest_steps_then_a_platform_wait() -> None:
    path = scenarios_dir() / "agent-stopped" / "runbook.md"
    text = path.read_text()
    steps = parse_runbook(text, "runbook.md")
    assert [s.kind for s in steps] == ["guest", "guest", "guest", "platform"]
    lines = text.splitlines()
    fix = " fix"
    assert all(
        lines[s.line - 1] == f"```{s.language} {s.kind}{fix if s.fix else ''}" for s in steps
    )
    assert [s.fix for s in steps] == [False, True, False, False]
    assert "systemctl restart walinuxagent" in steps[1].code
    assert "az vm get-instance-view" in steps[3].code


@pytest.mark.parametrize(
    ("info", "problem"),
    [
        (
            "bash guets",
            "expected 'bash guest', 'bash guest vm=NAME', 'bash platform' or 'python platform'",
        ),
        ("bash publisher fix", "a runbook does not play Microsoft; ask Microsoft through a"),
        (
            "python guest",
            "guest steps are bash; Python steps run on the platform ('python platform')",
        ),
        ("bash platform vm=vm1", "unexpected 'vm=vm1' (expected 'bash guest', "),
        ("bash guest vm=", "unexpected 'vm=' (expected"),
        ("bash guest host=vm1", "unexpected 'host=vm1' (expected"),
        ("bash guest vm=a vm=b", "unexpected 'vm=b' (expected"),
        ("bash fix", "expected 'bash guest', "),
        ("bash guest fix fix", "unexpected 'fix' (expected"),
        ("bash guest fixed", "unexpected 'fixed' (expected"),
        ("bash platform fix vm=vm1", "unexpected 'vm=vm1' (expected"),
    ],
)
def test_misspelt_fences_are_errors(info: str, problem: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_runbook(f"# R\n\n```{info}\ntrue\n```\n", "scenarios/x/runbook.md")
    assert str(caught.value).startswith(f"scenarios/x/runbook.md line 3: fence '{info}': {problem}")


@pytest.mark.parametrize(
    ("info", "vm"),
    [("bash guest fix", None), ("bash guest fix vm=vm2", "vm2"), ("bash guest vm=vm2 fix", "vm2")],
)
def test_fix_marks_a_guest_step_in_any_order(info: str, vm: str | None) -> None:
    (step,) = parse_runbook(f"```{info}\ntrue\n```\n", "rb.md")
    assert (step.kind, step.vm, step.fix) == ("guest", vm, True)
    assert step.describe().endswith(" fix)")


def test_fix_marks_platform_steps_too() -> None:
    steps = parse_runbook(
        "```bash platform fix\ntrue\n```\n\n```python platform fix\nprint(1)\n```\n"
        "\n```bash platform\ntrue\n```\n",
        "rb.md",
    )
    assert [(s.language, s.fix) for s in steps] == [
        ("bash", True),
        ("python", True),
        ("bash", False),
    ]


def test_an_empty_step_is_an_error() -> None:
    with pytest.raises(BadInput, match=r"^rb.md line 1: fence 'bash guest': the step has no code"):
        parse_runbook("```bash guest\n\n```\n", "rb.md")


FILES = LabSshFiles(Path("/labs/lab/ssh"))
PLACE = StepPlace(
    guests={
        "vm1": SshTarget("vm1", "10.0.0.10", FILES),
        "vm2": SshTarget("vm2", "10.0.0.11", FILES),
    },
    default_vm="vm1",
    platform_env={"SNAPLAB_LAB": "lab"},
    cwd=Path("/repo"),
)


def test_commands_for_each_kind_of_step() -> None:
    guest = Step(1, "guest", "bash", "echo hi\n")
    other = Step(2, "guest", "bash", "echo hi\n", vm="vm2")
    shell = Step(3, "platform", "bash", "snaplab status\n")
    python = Step(4, "platform", "python", "print(1)\n")
    assert command_for(guest, PLACE) == Command(PLACE.guests["vm1"].step_argv(), "echo hi\n")
    assert command_for(other, PLACE) == Command(PLACE.guests["vm2"].step_argv(), "echo hi\n")
    assert command_for(shell, PLACE) == Command(["bash", "-e", "-c", "snaplab status\n"])
    assert command_for(python, PLACE) == Command([sys.executable, "-c", "print(1)\n"])
    with pytest.raises(BadInput, match="no VM named 'vm3'"):
        command_for(Step(5, "guest", "bash", "true\n", vm="vm3"), PLACE)


def test_platform_env_has_the_lab_exports_and_snaplab_on_path() -> None:
    env = platform_env(
        {"SNAPLAB_ARM_ENDPOINT": "https://127.0.0.1:1"}, "lab1", "vm1", {"PATH": "/usr/bin"}
    )
    assert env["SNAPLAB_ARM_ENDPOINT"] == "https://127.0.0.1:1"
    assert env["SNAPLAB_LAB"] == "lab1" and env["SNAPLAB_VM"] == "vm1"
    scripts = env["PATH"].split(":")[0]
    assert (Path(scripts) / "snaplab").exists()
    assert env["PATH"].endswith(":/usr/bin")


def test_a_failing_step_stops_the_runbook_with_its_line_and_output() -> None:
    steps = [
        Step(3, "guest", "bash", "a"),
        Step(9, "guest", "bash", "b"),
        Step(15, "guest", "bash", "c"),
    ]
    ran: list[list[str]] = []

    def fake(argv, env, cwd, timeout, cancel, stdin):  # type: ignore[no-untyped-def]
        ran.append(list(argv))
        return (0, "ok\n", "") if stdin == "a" else (3, "working\nno such unit\n", "")

    result = run_steps(steps, PLACE, execute=fake)
    assert len(ran) == 2
    failed = result.failed
    assert failed is not None
    assert failed.failure() == "step at line 9 (bash guest) exited 3: no such unit"
    transcript = result.transcript("runbook.md")
    assert "$ runbook.md line 3 (bash guest)" in transcript
    assert "-> exit 3 in" in transcript


def test_platform_steps_really_run_with_the_environment(tmp_path: Path) -> None:
    place = StepPlace({}, "vm1", {"PATH": "/usr/bin:/bin", "SNAPLAB_VM": "vm1"}, tmp_path)
    steps = [
        Step(1, "platform", "bash", 'echo "vm=$SNAPLAB_VM"; pwd\n'),
        Step(5, "platform", "python", "import os; print('py', os.environ['SNAPLAB_VM'])\n"),
        Step(9, "platform", "bash", "false\necho never\n"),
    ]
    result = run_steps(steps, place)
    assert [r.exit_code for r in result.results] == [0, 0, 1]
    assert result.results[0].output == f"vm=vm1\n{tmp_path}\n"
    assert result.results[1].output == "py vm1\n"
    assert "never" not in result.results[2].output


def test_a_step_that_runs_too_long_is_stopped() -> None:
    began = time.monotonic()
    code, output, note = execute_command(
        ["bash", "-c", "echo started; sleep 30"], None, Path("/"), 0.5, None
    )
    assert code is None and note == "timed out after 0.5 s"
    assert output == "started\n"
    assert time.monotonic() - began < 10


def test_a_cancelled_step_is_stopped() -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    code, _, note = execute_command(["sleep", "30"], None, Path("/"), 60, cancel)
    assert code is None and note == "was cancelled"
