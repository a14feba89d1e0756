"""collect-logs on a real lab, one VM per agent version (2.2.47, 2.7.3.0, 2.12.0.2): the
agent's own `waagent -collect-logs` where it has one, snaplab's bundle where it has not,
the agent's layout either way; `case import` names the right agent version and distro;
the shipped waagent.conf data equals the images' files. Lab prefix ``cbn``."""

from __future__ import annotations

import io
import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from click.testing import CliRunner

from lab.bundle.conf_defaults import defaults_for, image_defaults, known_versions
from lab.cases.load import load_case
from lab.cli import cli
from lab.provision import lab as labs
from lab.provision.spec import lab_spec

pytestmark = pytest.mark.integration

LAB = f"cbn{os.getpid() % 100000}"
VMS = {"vm1": "2.2.47", "vm2": "2.7.3.0", "vm3": "2.12.0.2"}
DISTROS = {"2.2.47": "bookworm", "2.7.3.0": "bookworm", "2.12.0.2": "trixie"}
MADE_BY = {"2.2.47": "made by snaplab", "2.7.3.0": "agent's own", "2.12.0.2": "agent's own"}


@pytest.fixture(scope="module")
def lab(docker_client: docker.DockerClient) -> Iterator[str]:
    spec = lab_spec(LAB, tuple(f"{vm}:agent={agent}" for vm, agent in VMS.items()))
    labs.up(docker_client, spec, lambda _: None)
    try:
        yield LAB
    finally:
        labs.down(docker_client, LAB)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), obj={})
    return result.exit_code, result.output  # stdout and stderr as a person sees them


@pytest.mark.parametrize("vm", list(VMS))
def test_collect_logs_and_import(lab: str, vm: str, tmp_path: Path) -> None:
    agent = VMS[vm]
    bundle = tmp_path / f"{vm}-logs.zip"
    started = time.monotonic()
    code, output = invoke("collect-logs", vm, "--lab", lab, "-o", str(bundle), "--full")
    seconds = time.monotonic() - started
    print(f"collect-logs {vm} (agent {agent}): {seconds:.2f} s: {output.strip()}")
    assert code == 0, output
    assert MADE_BY[agent] in output
    with zipfile.ZipFile(io.BytesIO(bundle.read_bytes())) as archive:
        names = archive.namelist()
        results = archive.read("results.txt").decode()
    assert names[-1] == "results.txt"
    assert "var/log/waagent.log" in names and "etc/waagent.conf" in names
    assert "etc/os-release" in names and "var/lib/dhcp/dhclient.eth0.leases" in names
    assert not any(n.endswith((".prv", ".pem")) for n in names)
    assert ("Bundle made by snaplab" in results) == (agent == "2.2.47")

    case_file = tmp_path / "case.yaml"
    code, output = invoke("case", "import", str(bundle), "-o", str(case_file))
    assert code == 0, output
    found = load_case(case_file)
    assert found.vms[0].agent == agent
    assert found.observed is not None and DISTROS[agent] in (found.observed.distro or "")
    assert found.vms[0].waagent_conf == {}  # the lab image's own changes are not the case's
    assert found.faults == [] or agent == "2.2.47"  # 2.2.47 is below Azure's minimum
    assert "vms[0].agent" in found.evidence


def test_a_vm_shut_down_inside_is_read_as_a_rescue_vm_would(
    lab: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    container = labs.guest_container(docker_client, lab, "vm1")
    container.exec_run(["systemctl", "poweroff"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        container.reload()
        if container.status != "running":
            break
        time.sleep(1)
    code, output = invoke("collect-logs", "vm1", "--lab", lab, "-o", str(tmp_path / "r.zip"))
    assert code == 0, output
    assert "from the VM's disk" in output and "rescue VM" in output


@pytest.mark.parametrize("version", known_versions())
def test_shipped_conf_data_equals_the_images(
    docker_client: docker.DockerClient, version: str
) -> None:
    data = image_defaults(docker_client, version)
    stored = defaults_for(version)
    assert (data["shipped"], data["lab"]) == (stored.shipped, stored.lab), (
        "regenerate with `python -m lab.bundle.conf_defaults`"
    )
