"""`snaplab down --all` removes every labelled object a killed run could leave.

It sweeps *every* lab on the engine, so it runs last and only where the run owns the
engine (tox and CI set SNAPLAB_TEST_SWEEP_ALL=1); elsewhere it would remove the labs
a person is working in.
"""

from __future__ import annotations

import os
import subprocess

import docker
import pytest

from lab.provision import network
from lab.provision.images import guest_recipe
from lab.provision.labels import LAB_LABEL, lab_labels
from tests.integration.conftest import RUN_ID
from tests.integration.test_lifecycle import leftovers, snaplab

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("SNAPLAB_TEST_SWEEP_ALL") != "1",
        reason="sweeps every lab on this engine; tox/CI enable it with SNAPLAB_TEST_SWEEP_ALL=1",
    ),
]


def test_down_all_removes_everything_labelled(docker_client: docker.DockerClient) -> None:
    lab = f"it{RUN_ID}orphan"
    network.create_network(docker_client, lab)
    network.add_firewall_rules(lab)
    docker_client.volumes.create(name=f"snaplab-{lab}-x", labels=lab_labels(lab, "orphan"))
    image = guest_recipe("2.7.3.0").tag
    docker_client.containers.create(
        image, name=f"snaplab-{lab}-x", labels=lab_labels(lab, "orphan")
    )
    assert len(leftovers(docker_client, lab)) >= 4

    done = snaplab("down", "--all")

    assert done.returncode == 0, done.stderr
    assert leftovers(docker_client, lab) == []
    assert docker_client.containers.list(all=True, filters={"label": LAB_LABEL}) == []
    rules = subprocess.run(["iptables", "-S", "DOCKER-USER"], capture_output=True, text=True).stdout
    assert "snaplab.lab=" not in rules
