"""SIGTERM and SIGHUP end `run` and `up` like Ctrl-C: nothing labelled is left, no
DOCKER-USER rule of the lab stays, and the exit code is 128 + the signal's number.

Each case pays for one lab start, so signals go in as early as the phase allows.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import docker
import docker.errors
import pytest

from lab.provision.labels import LAB_LABEL, ROLE_LABEL
from lab.runner import lab_name
from tests.integration.conftest import RUN_ID
from tests.integration.test_lifecycle import leftovers as _leftovers

pytestmark = pytest.mark.integration


def wait_for_container(
    client: docker.DockerClient, command: Command, lab: str, role: str, seconds: float = 120
) -> None:
    """Until the lab has a container of ``role`` (a sparse listing: no inspect that could
    race a removal), while the command still runs."""
    selector = {"label": [f"{LAB_LABEL}={lab}", f"{ROLE_LABEL}={role}"]}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert command.proc.poll() is None, f"ended before the signal:\n{command.output}"
        if client.containers.list(all=True, sparse=True, filters=selector):
            return
        time.sleep(0.2)
    raise AssertionError(f"no {role} container of lab {lab} appeared:\n{command.output}")


def leftovers(client: docker.DockerClient, lab: str) -> list[str]:
    for _ in range(3):  # a container of another lab may vanish between list and inspect
        try:
            return _leftovers(client, lab)
        except docker.errors.NotFound:
            time.sleep(0.5)
    return _leftovers(client, lab)


# lab.signals escalates after 5 s; removing a lab takes 1-3 s; the sweep waits up to 3 s.
BOUND_SECONDS = 20.0


@dataclass
class Command:
    """A snaplab process whose stderr is read as it comes (the run's phase lines)."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    @classmethod
    def start(cls, *args: str) -> Command:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lab", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        command = cls(proc)
        threading.Thread(target=command._read, daemon=True).start()
        return command

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()

    def wait_for_line(self, text: str, seconds: float = 180) -> None:
        with self.changed:
            found = self.changed.wait_for(
                lambda: any(text in line for line in self.lines) or self.proc.poll() is not None,
                seconds,
            )
        assert found and self.proc.poll() is None, f"no {text!r} in:\n{self.output}"

    def end(self, seconds: float = 120) -> int:
        code = self.proc.wait(seconds)
        time.sleep(0.1)  # the reader takes the last lines
        return code

    @property
    def output(self) -> str:
        with self.changed:
            return "\n".join(self.lines)


def _signal_and_check(
    client: docker.DockerClient,
    command: Command,
    lab: str,
    signums: tuple[int, ...],
    gap: float = 0.3,
) -> float:
    began = time.monotonic()
    for index, signum in enumerate(signums):
        if index:
            time.sleep(gap)
        command.proc.send_signal(signum)
    code = command.end()
    took = time.monotonic() - began
    assert code == 128 + signums[0], command.output
    assert leftovers(client, lab) == [], command.output
    assert took < BOUND_SECONDS, f"took {took:.1f} s:\n{command.output}"
    return took


Wait = Callable[[docker.DockerClient, Command, str], None]


def _in_provision(client: docker.DockerClient, command: Command, lab: str) -> None:
    wait_for_container(client, command, lab, "fabric")


def _phase_passed(phase: str) -> Wait:
    def wait(client: docker.DockerClient, command: Command, lab: str) -> None:
        command.wait_for_line(f"agent-stopped: {phase} passed")

    return wait


@pytest.mark.parametrize(
    ("tag", "wait", "signums"),
    [
        pytest.param("p", _in_provision, (signal.SIGTERM,), id="sigterm-in-provision"),
        pytest.param(
            "pp", _in_provision, (signal.SIGHUP, signal.SIGHUP), id="two-sighups-in-provision"
        ),
        pytest.param("b", _phase_passed("inject"), (signal.SIGHUP,), id="sighup-in-backup-wait"),
        pytest.param("r", _phase_passed("diagnose"), (signal.SIGTERM,), id="sigterm-in-runbook"),
    ],
)
def test_a_signalled_run_tears_its_lab_down(
    docker_client: docker.DockerClient, tag: str, wait: Wait, signums: tuple[int, ...]
) -> None:
    prefix = f"h5{tag}{RUN_ID % 10000}"
    lab = lab_name(prefix, "agent-stopped")
    command = Command.start("run", "agent-stopped", "--lab-prefix", prefix)
    try:
        wait(docker_client, command, lab)
        _signal_and_check(docker_client, command, lab, signums)
    finally:
        if command.proc.poll() is None:
            command.proc.kill()
        subprocess.run([sys.executable, "-m", "lab", "down", lab], capture_output=True)
    if len(signums) == 1 and tag != "p":
        # Stopped at a phase boundary: the run says so and tore the lab down itself.
        assert "agent-stopped: teardown passed" in command.output
        assert "interrupted" in command.output


@pytest.mark.parametrize(
    ("tag", "args", "role", "signums"),
    [
        pytest.param("u", (), "guest", (signal.SIGHUP,), id="up-sighup"),
        # The second signal lands while `up` removes its lab: the removal finishes.
        pytest.param("uu", (), "guest", (signal.SIGTERM, signal.SIGTERM), id="up-two-sigterms"),
        pytest.param("s", ("--scenario", "agent-stopped"), "fabric", (signal.SIGTERM,), id="drill"),
    ],
)
def test_a_signalled_up_removes_its_lab(
    docker_client: docker.DockerClient,
    tag: str,
    args: tuple[str, ...],
    role: str,
    signums: tuple[int, ...],
) -> None:
    lab = f"h5{tag}{RUN_ID % 10000}"
    command = Command.start("up", "--lab", lab, *args)
    try:
        wait_for_container(docker_client, command, lab, role)
        _signal_and_check(docker_client, command, lab, signums, gap=0.1)
    finally:
        if command.proc.poll() is None:
            command.proc.kill()
        subprocess.run([sys.executable, "-m", "lab", "down", lab], capture_output=True)
    assert f"Error: interrupted ({signal.Signals(signums[0]).name})" in command.output
