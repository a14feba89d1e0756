"""The first backup of a fresh VM installs the handler; a diagnosis that runs while the
agent installs it names no cause (the race that failed schedule-storm on a fresh machine).

Under nine VMs' load an install took long enough for the checks to see the handler
half-made. Here the same state is held open on one VM: a watcher in the guest pauses the
agent's real install command (its whole process group, SIGSTOP) for a few seconds, as a
starved CPU would, then lets it go on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import docker
import pytest

from checks.context import GuestFacts, context_for
from checks.context import testinfra_host as guest_shell
from checks.in_guest import handler
from checks.in_guest.handler import handler_files
from checks.in_motion import Settled
from lab.diagnosis import diagnose
from lab.provision import lab as labs
from lab.provision.fabric_client import FabricClient
from lab.provision.spec import VmSpec
from tests.integration.conftest import RUN_ID, RunningLab, _bring_up

pytestmark = pytest.mark.integration
T = TypeVar("T")

HELD_SECONDS = 12
HOLD_INSTALL = f"""
for i in $(seq 1 6000); do
    pid=$(pgrep -f '[h]andle.sh install' | head -n 1)
    if [ -n "$pid" ]; then
        group=$(ps -o pgid= -p "$pid" | tr -d ' ')
        kill -STOP -- "-$group"
        echo "$pid $group" > /run/h5-install-held
        sleep {HELD_SECONDS}
        kill -CONT -- "-$group"
        exit 0
    fi
    sleep 0.01
done
"""


def _one_look(
    observe: Callable[[], T], remaining: Callable[[T], float | None], limit: float
) -> Settled[T]:
    return Settled(observe(), 0.0, moving=False)


def context_facts(running: RunningLab) -> GuestFacts:
    return context_for(running.client, running.roster, "vm1").facts


@pytest.fixture
def fresh_lab(docker_client: docker.DockerClient) -> Iterator[RunningLab]:
    """A VM whose agent has never installed the VMSnapshot handler."""
    running = _bring_up(docker_client, f"h5m{RUN_ID % 10000}", (VmSpec("vm1"),))
    try:
        yield running
    finally:
        labs.down(docker_client, running.name)


def test_a_diagnosis_during_the_first_install_names_no_cause(fresh_lab: RunningLab) -> None:
    guest = fresh_lab.client.containers.get(fresh_lab.roster.guests[0].container)
    guest.exec_run(["bash", "-c", HOLD_INSTALL], detach=True)
    FabricClient(fresh_lab.roster.fabric_ip).start_backup("vm1")
    deadline = time.monotonic() + 90
    while guest.exec_run(["test", "-f", "/run/h5-install-held"]).exit_code != 0:
        assert time.monotonic() < deadline, "the agent never ran the handler's install"
        time.sleep(0.2)
    state = guest.exec_run(
        [
            "bash",
            "-c",
            "cat /var/lib/waagent/Microsoft.Azure.RecoveryServices.*/config/HandlerState",
        ]
    ).output.decode()
    assert state.strip() == "NotInstalled"  # the diagnosis starts on a handler in motion
    # A single look, as the checks took before they watched: the race is reproduced.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(handler, "watch", _one_look)
        snapshot = handler_files(guest_shell(guest.name), context_facts(fresh_lab))
    assert not snapshot.passed and "HandlerState NotInstalled" in snapshot.detail

    began = time.monotonic()
    found = diagnose(fresh_lab.client, fresh_lab.roster, "vm1")
    took = time.monotonic() - began

    checks = {check.id: check for check in found.checks}
    assert found.cause_ids == (), found.to_json()
    files = checks["guest.handler_files"]
    assert files.passed and "HandlerState Enabled" in files.detail, files.detail
    assert "while the agent installed and enabled it" in files.detail
    assert took < 60  # it returned once the install settled, not after a blind sleep
