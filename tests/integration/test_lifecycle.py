"""Labs never leak: bad input leaves a running lab untouched, and every way of
ending `up` early (an error, Ctrl-C, a killed process) ends with nothing labelled."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import docker
import pytest

from lab.provision.guest_reach import chain_name
from lab.provision.labels import LAB_LABEL, rule_comment
from tests.integration.conftest import RUN_ID, RunningLab

pytestmark = pytest.mark.integration


def snaplab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab", *args], capture_output=True, text=True, timeout=timeout
    )


def start_snaplab(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lab", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def leftovers(client: docker.DockerClient, lab: str) -> list[str]:
    selector = {"label": f"{LAB_LABEL}={lab}"}
    found = [c.name for c in client.containers.list(all=True, filters=selector)]
    found += [n.name for n in client.networks.list(filters=selector)]
    found += [v.name for v in client.volumes.list(filters=selector)]
    # Every chain of both tables: DHCP/IMDS/NSG rules and the guard's jumps (DOCKER-USER),
    # the host's INPUT rule, the IPv6 drops, and the lab's own chain (lab.provision.guest_reach).
    for tool in ("iptables", "ip6tables"):
        rules = subprocess.run([tool, "-w", "-S"], capture_output=True, text=True).stdout
        found += [line for line in rules.splitlines() if rule_comment(lab) in shlex.split(line)]
        found += [line for line in rules.splitlines() if line == f"-N {chain_name(lab)}"]
    return found


def wait_for_container(
    client: docker.DockerClient, lab: str, role: str, seconds: float = 120
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.containers.list(
            all=True, filters={"label": [f"{LAB_LABEL}={lab}", f"snaplab.role={role}"]}
        ):
            return
        time.sleep(0.2)
    raise AssertionError(f"no {role} container of lab {lab} appeared")


def test_duplicate_lab_name_is_refused_and_the_lab_survives(agents_lab: RunningLab) -> None:
    before = sorted(
        c.name
        for c in agents_lab.client.containers.list(
            filters={"label": f"{LAB_LABEL}={agents_lab.name}"}
        )
    )
    done = snaplab("up", "--lab", agents_lab.name)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"Error: --lab {agents_lab.name!r}: a lab with this name already exists"
    )
    after = sorted(
        c.name
        for c in agents_lab.client.containers.list(
            filters={"label": f"{LAB_LABEL}={agents_lab.name}"}
        )
    )
    assert before == after
    assert agents_lab.fabric.vm("vm2-7-3-0")["agent"]["status"] == "Ready"


def test_unknown_vm_is_exit_2(agents_lab: RunningLab) -> None:
    done = snaplab("status", agents_lab.name, "--vm", "nosuchvm")
    assert done.returncode == 2
    assert "'nosuchvm'" in done.stderr and "Traceback" not in done.stderr


def test_unknown_lab_is_exit_2(docker_client: docker.DockerClient) -> None:
    done = snaplab("status", f"nolab{RUN_ID}")
    assert done.returncode == 2
    assert done.stderr.startswith(f"Error: no lab named 'nolab{RUN_ID}'")


def test_status_json_shape(agents_lab: RunningLab) -> None:
    done = snaplab("status", agents_lab.name, "--vm", "vm2-7-3-0", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["lab"] == agents_lab.name
    (vm,) = data["vms"]
    assert vm["name"] == "vm2-7-3-0" and vm["power_state"] == "running"
    assert vm["agent"]["version"] == "2.7.3.0" and vm["agent"]["status"] == "Ready"
    assert vm["agent"]["last_report"].endswith("Z")
    # Other tests on this lab may have run backups: extensions are whatever the agent reports.
    assert isinstance(vm["extensions"], list)
    assert all({"name", "version", "status"} <= set(e) for e in vm["extensions"])


def test_ctrl_c_during_up_tears_everything_down(docker_client: docker.DockerClient) -> None:
    lab = f"it{RUN_ID}int"
    proc = start_snaplab("up", "--lab", lab)
    wait_for_container(docker_client, lab, "fabric")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Error: interrupted" in stderr
    assert leftovers(docker_client, lab) == []


def test_down_sweeps_what_a_killed_up_left(docker_client: docker.DockerClient) -> None:
    lab = f"it{RUN_ID}kill"
    proc = start_snaplab("up", "--lab", lab)
    wait_for_container(docker_client, lab, "guest")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert leftovers(docker_client, lab) != []
    done = snaplab("down", lab)
    assert done.returncode == 0, done.stderr
    assert leftovers(docker_client, lab) == []
