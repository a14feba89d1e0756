"""The diagnosis's guest session on a real guest: one shell at the raised priority, every
command forked from it inherits the priority, outputs and exit codes come back apart, a
hung command is ended (and its processes with it), and under a CPU hog the whole
diagnosis still answers in seconds while it finds the saturated CPU."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import docker
import pytest

from checks.context import context_for
from checks.session import PRIORITY, GuestSession
from lab.diagnosis import diagnose_context
from lab.platform.roster import Roster
from lab.provision import lab as labs
from lab.provision.spec import lab_spec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def roster(docker_client: docker.DockerClient) -> Iterator[Roster]:
    name = f"gs{os.getpid()}"
    up = labs.up(docker_client, lab_spec(name, ("vm1:agent=2.7.3.0",)), lambda _: None)
    try:
        yield up
    finally:
        labs.down(docker_client, name)


def container(roster: Roster) -> str:
    return roster.guest_by_name("vm1").container  # type: ignore[union-attr]


def test_commands_run_in_one_shell_at_the_raised_priority(
    docker_client: docker.DockerClient, roster: Roster
) -> None:
    with GuestSession(docker_client, container(roster)) as session:
        nice = session.run("ps -o ni= -p $$")
        assert (nice.rc, nice.stdout.strip()) == (0, str(PRIORITY))
        out = session.run("echo out; echo err >&2; exit 7")
        assert (out.rc, out.stdout, out.stderr) == (7, "out\n", "err\n")
        assert session.run("cat /etc/debian_version").stdout.strip()


def test_a_hung_command_is_ended_with_its_processes(
    docker_client: docker.DockerClient, roster: Roster
) -> None:
    session = GuestSession(docker_client, container(roster), timeout=2)
    try:
        assert session.run("sleep 300 # snaplab-hang-probe").rc == 124
        left = session.run("ps -eo args= | grep -c '[s]naplab-hang-probe' || true")
        assert left.stdout.strip() == "0"
    finally:
        session.close()


def test_a_cpu_saturated_guest_is_diagnosed_in_seconds(
    docker_client: docker.DockerClient, roster: Roster
) -> None:
    hog = "systemd-run --unit=gs-hog stress-ng --cpu 48 --timeout 300"
    docker_client.containers.get(container(roster)).exec_run(["sh", "-c", hog])
    try:
        time.sleep(3)
        started = time.monotonic()
        diagnosis = diagnose_context(context_for(docker_client, roster, "vm1"))
        seconds = time.monotonic() - started
        assert "cpu-saturation" in diagnosis.cause_ids, diagnosis.to_json()
        assert seconds < 30, f"diagnosis took {seconds:.1f} s under the CPU hog"
    finally:
        docker_client.containers.get(container(roster)).exec_run(["systemctl", "stop", "gs-hog"])
