"""``pytest checks --hosts=docker://<container>``: every check as a test on that guest.

testinfra's plugin gives the ``host`` fixture (one per ``--hosts`` entry); the platform
side (ARM twin, jobs, NSG rules) is found from the container's ``snaplab.lab`` /
``snaplab.vm`` labels. For a host that is not a lab container (an SSH target, say),
name its lab and VM with ``--snaplab-lab`` and ``--snaplab-vm``. A failing test's
message is the check's detail.
"""

from __future__ import annotations

from typing import Any

import pytest

from checks.context import CheckContext, context_for, context_from_container
from checks.host import GuestHost, probe


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("snaplab checks")
    group.addoption("--snaplab-lab", default=None, help="lab of a non-docker --hosts target")
    group.addoption("--snaplab-vm", default=None, help="VM name of a non-docker --hosts target")


@pytest.fixture(scope="module")
def check_context(host: Any, request: pytest.FixtureRequest) -> CheckContext:
    """The context for the ``host`` under test (one per --hosts entry)."""
    import docker

    from lab.provision import lab as labs

    guest: GuestHost = host
    client = docker.from_env()
    lab = request.config.getoption("--snaplab-lab")
    vm = request.config.getoption("--snaplab-vm")
    if lab and vm:
        return context_for(client, labs.roster_of(client, lab), vm, host=guest)
    backend = host.backend
    if backend.NAME != "docker":
        pytest.fail(
            f"{backend.get_pytest_id()}: not a docker:// lab guest; "
            "give --snaplab-lab and --snaplab-vm to name its lab and VM",
            pytrace=False,
        )
    return context_from_container(client, backend.name, host=guest)


@pytest.fixture(scope="module")
def answering_guest(check_context: CheckContext) -> CheckContext:
    """The context, after making sure the guest OS answers at all."""
    state = probe(check_context.host)
    if not state.answers:
        pytest.fail(f"{check_context.vm}: the guest OS does not answer ({state.state})", False)
    return check_context
