"""Runbooks: Markdown for people whose marked fences the runner executes, in order.

A fence's info string says where its code runs: ``bash guest`` (in the scenario's first
faulted VM, over SSH as its admin and then root, as after ``sudo -i`` on an Azure VM,
with ``bash -e``), ``bash guest vm=NAME`` (another VM), ``bash platform`` (on the Docker
host, with the lab's ``snaplab env`` exports) or ``python platform``; the
word ``fix`` after them (``bash guest fix``) marks a step that clears the cause, as opposed
to one that looks or waits, so the runner can prove the runbook needs it (the
``without-fix`` variant runs the runbook without those steps). Any other fence is only
shown to the reader. The Markdown is parsed by markdown-it (CommonMark),
so fences inside lists, ``~~~`` fences and indented code behave as a reader sees them.

Executing a runbook is what a person would do: each step's output is captured, each has
a timeout, and the first failing step stops the runbook with its line and output tail.
A guest step reaches its VM as an engineer reaches an Azure VM: ``ssh azureuser@VM`` with
the lab's key, then a root shell (:mod:`lab.provision.ssh_client`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from markdown_it import MarkdownIt

from lab.errors import BadInput
from lab.provision.ssh_client import SshTarget

StepKind = Literal["guest", "platform"]
StepLanguage = Literal["bash", "python"]

EXECUTABLE_LANGUAGES: tuple[StepLanguage, ...] = ("bash", "python")
STEP_TIMEOUT_SECONDS = 300.0
OUTPUT_TAIL_LINES = 20
FORMS = (
    "'bash guest', 'bash guest vm=NAME', 'bash platform' or 'python platform', "
    "optionally followed by 'fix'"
)
# A step no engineer can take: what Microsoft does (withdrawing a release) is asked of
# Microsoft through a support case, never played by a runbook.
NOT_A_PLACE = {
    "publisher": (
        "a runbook does not play Microsoft; ask Microsoft through a support case "
        "(Microsoft.Support, azure-mgmt-support) in a 'python platform' step"
    ),
}
FIX_WORD = "fix"


@dataclass(frozen=True)
class Step:
    """One executable fence. ``line`` is the 1-based line of its opening fence."""

    line: int
    kind: StepKind
    language: StepLanguage
    code: str
    vm: str | None = None
    fix: bool = False

    def describe(self) -> str:
        where = f" vm={self.vm}" if self.vm else ""
        fix = f" {FIX_WORD}" if self.fix else ""
        return f"line {self.line} ({self.language} {self.kind}{where}{fix})"


def parse_runbook(text: str, source: str) -> list[Step]:
    """The executable steps of a runbook, in order; ``source`` names it in errors."""
    steps = []
    for token in MarkdownIt("commonmark").parse(text):
        if token.type != "fence" or token.map is None:
            continue
        line = token.map[0] + 1
        step = _step_from_fence(token.info.strip(), token.content, line, source)
        if step is not None:
            steps.append(step)
    return steps


def _step_from_fence(info: str, code: str, line: int, source: str) -> Step | None:
    words = info.split()
    if len(words) < 2 or words[0] not in EXECUTABLE_LANGUAGES:
        return None  # shown to the reader only: no language, or no place to run it
    language: StepLanguage = "bash" if words[0] == "bash" else "python"

    def bad(problem: str) -> BadInput:
        return BadInput(f"{source} line {line}: fence '{info}': {problem}")

    kinds: dict[str, StepKind] = {"guest": "guest", "platform": "platform"}
    if words[1] in NOT_A_PLACE:
        raise bad(NOT_A_PLACE[words[1]])
    if words[1] not in kinds:
        raise bad(f"expected {FORMS}")
    kind = kinds[words[1]]
    vm = None
    fix = False
    for option in words[2:]:
        key, sep, value = option.partition("=")
        if option == FIX_WORD and not fix:
            fix = True
        elif kind != "guest" or key != "vm" or not sep or not value or vm is not None:
            raise bad(f"unexpected {option!r} (expected {FORMS})")
        else:
            vm = value
    if kind == "guest" and language != "bash":
        raise bad(f"{kind} steps are bash; Python steps run on the platform ('python platform')")
    if not code.strip():
        raise bad("the step has no code")
    return Step(line=line, kind=kind, language=language, code=code, vm=vm, fix=fix)


@dataclass(frozen=True)
class StepPlace:
    """Where a runbook's steps run: the lab's guests (over SSH) and the platform's env."""

    guests: Mapping[str, SshTarget]
    default_vm: str
    platform_env: Mapping[str, str]
    cwd: Path


@dataclass(frozen=True)
class Command:
    """What runs one step: an argv, and the text it reads on stdin (None: nothing)."""

    argv: list[str]
    stdin: str | None = None


def command_for(step: Step, place: StepPlace) -> Command:
    """The command that runs ``step`` where it belongs. A guest step's code goes to the
    guest's root shell on stdin, so it needs no quoting for the shells on the way."""
    if step.kind == "guest":
        vm = step.vm or place.default_vm
        target = place.guests.get(vm)
        if target is None:
            raise BadInput(f"{step.describe()}: the lab has no VM named {vm!r}")
        return Command(target.step_argv(), stdin=step.code)
    if step.language == "python":
        return Command([sys.executable, "-c", step.code])
    return Command(["bash", "-e", "-c", step.code])


def platform_env(
    exports: Mapping[str, str], lab: str, vm: str, base: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """A platform step's environment: the caller's, ``snaplab env``, the lab and VM, and
    ``snaplab`` on PATH (the scripts folder of the Python running the runner) before the
    exports' PATH (which has ``az`` when the Azure CLI is installed) or the caller's."""
    scripts = sysconfig.get_path("scripts")
    outer = exports.get("PATH") or base.get("PATH", "")
    path = os.pathsep.join(p for p in (scripts, outer) if p)
    return {**base, **exports, "SNAPLAB_LAB": lab, "SNAPLAB_VM": vm, "PATH": path}


@dataclass(frozen=True)
class StepResult:
    step: Step
    exit_code: int | None  # None: timed out or cancelled before it ended
    output: str
    seconds: float
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def failure(self) -> str:
        """One line: which step failed and how, ending in its last output line."""
        how = self.note or f"exited {self.exit_code}"
        lines = self.output.strip().splitlines()
        return f"step at {self.step.describe()} {how}: {lines[-1] if lines else 'no output'}"


@dataclass
class RunbookResult:
    results: list[StepResult] = field(default_factory=list)

    @property
    def failed(self) -> StepResult | None:
        return next((r for r in self.results if not r.passed), None)

    def transcript(self, source: str) -> str:
        """What a person would have seen at their terminal, step after step."""
        parts = []
        for result in self.results:
            parts.append(f"$ {source} {result.step.describe()}")
            parts.append(result.step.code.rstrip())
            if result.output.strip():
                parts.append(result.output.rstrip())
            outcome = result.note or f"exit {result.exit_code}"
            parts.append(f"-> {outcome} in {result.seconds:.1f} s")
        return "\n".join(parts)


Execute = Callable[
    [Sequence[str], Mapping[str, str] | None, Path, float, threading.Event | None, str | None],
    tuple[int | None, str, str],
]


def run_steps(
    steps: Sequence[Step],
    place: StepPlace,
    *,
    timeout: float = STEP_TIMEOUT_SECONDS,
    cancel: threading.Event | None = None,
    execute: Execute | None = None,
) -> RunbookResult:
    """Run steps in order until one fails (a non-zero exit, a timeout, or a cancel)."""
    run = execute or execute_command
    outcome = RunbookResult()
    for step in steps:
        env = dict(place.platform_env) if step.kind != "guest" else None
        command = command_for(step, place)
        began = time.monotonic()
        code, output, note = run(command.argv, env, place.cwd, timeout, cancel, command.stdin)
        seconds = time.monotonic() - began
        outcome.results.append(StepResult(step, code, output, seconds, note))
        if code != 0:
            break
    return outcome


def execute_command(
    argv: Sequence[str],
    env: Mapping[str, str] | None,
    cwd: Path,
    timeout: float,
    cancel: threading.Event | None,
    stdin: str | None = None,
) -> tuple[int | None, str, str]:
    """Run argv with stdout and stderr interleaved; stop it at the timeout or on cancel.

    ``stdin`` is written to the command's standard input, which is then closed (without
    it the command reads nothing). Returns (exit code or None, output, note) where the
    note says why it was stopped.
    """
    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    chunks: list[str] = []
    reader = threading.Thread(target=_collect, args=(process, chunks), daemon=True)
    reader.start()
    if stdin is not None:
        # In its own thread: a command that never reads must not hold the runner past
        # the timeout on a full pipe.
        threading.Thread(target=_feed, args=(process, stdin), daemon=True).start()
    note = ""
    while process.poll() is None:
        if cancel is not None and cancel.is_set():
            note = "was cancelled"
        elif time.monotonic() > deadline:
            note = f"timed out after {timeout:g} s"
        if note:
            _stop(process)
            break
        time.sleep(0.1)
    process.wait()
    reader.join(timeout=5)
    output = "".join(chunks)
    return (None if note else process.returncode), output, note


def _collect(process: subprocess.Popen[str], chunks: list[str]) -> None:
    """Read line by line, so a step that leaves a child holding the pipe still shows
    everything it printed up to the point the runner gave up waiting."""
    assert process.stdout is not None
    for line in process.stdout:
        chunks.append(line)


def _feed(process: subprocess.Popen[str], text: str) -> None:
    assert process.stdin is not None
    with contextlib.suppress(OSError):  # the command ended (or was stopped) first
        process.stdin.write(text)
    with contextlib.suppress(OSError):
        process.stdin.close()


def _stop(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def tail(text: str, lines: int = OUTPUT_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
