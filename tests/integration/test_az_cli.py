"""The unmodified Azure CLI against a real lab, as an engineer types it on Azure.

``snaplab env``'s exports (what a runbook's platform step gets) log the lab in like Cloud
Shell: the lab's cloud registered from the twin's metadata, ``az login --identity`` with
the lab's managed identity. Then the commands of az-cli.md run against the real guest:
the agent's status from the instance view, Run Command carried out by the real agent,
an NSG rule created, listed and deleted (held in the host firewall), Backup now by the
VM's name and its job followed to ``Completed``, the jobs and the VM's extensions listed,
and an error printed as ``ERROR: (Code) message``. The Python SDK keeps working with the
same exports (the CA bundle is the public roots plus the lab CA).

Skipped, saying why, only when ``snaplab setup --az`` has not installed the CLI (CI does:
.ci/run). The time of the first login and of each command is printed (``-s``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import pytest

from lab.azcli import install
from lab.provision import lab as labs
from lab.provision.spec import VmSpec
from lab.provision.state_dir import az_config_dir
from lab.runner import env_exports
from tests.integration.conftest import RUN_ID, RunningLab, _bring_up

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        install.installed() is None,
        reason=f"{install.PACKAGE} {install.PINNED_VERSION} is not installed "
        f"(`snaplab setup --az` puts it in {install.venv_dir()})",
    ),
]


@dataclass
class AzLab:
    lab: RunningLab
    env: dict[str, str]
    login_seconds: float

    @property
    def group(self) -> str:
        return self.env["AZURE_RESOURCE_GROUP"]

    def az(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        done = subprocess.run(
            ["az", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        print(
            f"az {' '.join(args[:3])}: exit {done.returncode}, {time.monotonic() - started:.1f} s"
        )
        return done


@pytest.fixture(scope="module")
def az_lab(docker_client: docker.DockerClient) -> Iterator[AzLab]:
    running = _bring_up(docker_client, f"hg{RUN_ID}", (VmSpec("vm1"),))
    try:
        started = time.monotonic()
        exports = env_exports(labs.arm_endpoint(docker_client, running.name))
        login = time.monotonic() - started
        print(f"first snaplab env (az cloud register + set + login --identity): {login:.1f} s")
        yield AzLab(running, {**os.environ, **exports}, login)
    finally:
        labs.down(docker_client, running.name)
    assert not az_config_dir(running.name).exists(), "down leaves the lab's az config"


def test_snaplab_env_logs_the_lab_in(az_lab: AzLab) -> None:
    assert az_lab.env["AZURE_CONFIG_DIR"] == str(az_config_dir(az_lab.lab.name))
    assert az_lab.env["PATH"].split(os.pathsep)[0] == str(install.installed().path_folder)  # type: ignore[union-attr]
    assert az_lab.login_seconds < 30
    again = time.monotonic()
    env_exports(labs.arm_endpoint(az_lab.lab.client, az_lab.lab.name))
    assert time.monotonic() - again < 5  # logged in once
    shown = az_lab.az("account", "show", "--query", "[id, user.name]", "-o", "tsv")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == [az_lab.lab.roster.subscription_id, "systemAssignedIdentity"]


def test_the_agent_is_ready_in_the_instance_view(az_lab: AzLab) -> None:
    done = az_lab.az(
        "vm", "get-instance-view", "-g", az_lab.group, "-n", "vm1",
        "--query", "instanceView.vmAgent.statuses[0]", "-o", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["displayStatus"] == "Ready" and status["code"] == "ProvisioningState/succeeded"


def test_run_command_invoke_runs_in_the_guest(az_lab: AzLab) -> None:
    done = az_lab.az(
        "vm", "run-command", "invoke", "-g", az_lab.group, "-n", "vm1",
        "--command-id", "RunShellScript", "--scripts", "echo hello from $(hostname)",
        "--query", "value[0].message", "-o", "tsv",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Enable succeeded" in done.stdout and "hello from vm1" in done.stdout


def test_an_nsg_rule_is_created_listed_and_deleted(az_lab: AzLab) -> None:
    nsg = ("-g", az_lab.group, "--nsg-name", "vm1-nsg")
    created = az_lab.az(
        "network", "nsg", "rule", "create", *nsg, "-n", "deny-storage", "--priority", "100",
        "--direction", "Outbound", "--access", "Deny", "--protocol", "*",
        "--destination-address-prefixes", "Storage", "--destination-port-ranges", "*",
        "--query", "provisioningState", "-o", "tsv",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "Succeeded"
    names = ("--query", "[].name", "-o", "tsv")
    assert az_lab.az("network", "nsg", "rule", "list", *nsg, *names).stdout.split() == [
        "deny-storage"
    ]
    deleted = az_lab.az("network", "nsg", "rule", "delete", *nsg, "-n", "deny-storage")
    assert deleted.returncode == 0, deleted.stderr
    assert az_lab.az("network", "nsg", "rule", "list", *nsg, *names).stdout.split() == []


def test_backup_now_its_job_and_the_extensions(az_lab: AzLab) -> None:
    vault = az_lab.az("backup", "vault", "list", "-g", az_lab.group, "--query", "[0].name")
    name = json.loads(vault.stdout)
    started = az_lab.az(
        "backup", "protection", "backup-now", "-g", az_lab.group, "-v", name,
        "--container-name", "vm1", "--item-name", "vm1",
        "--backup-management-type", "AzureIaasVM", "--query", "name", "-o", "tsv",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    job = started.stdout.strip()
    status = ""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        shown = az_lab.az(
            "backup", "job", "show", "-g", az_lab.group, "-v", name, "-n", job,
            "--query", "properties.status", "-o", "tsv",
        )  # fmt: skip
        status = shown.stdout.strip()
        if status not in ("InProgress", ""):
            break
        time.sleep(3)
    assert status == "Completed"
    listed = az_lab.az("backup", "job", "list", "-g", az_lab.group, "-v", name, "-o", "json")
    jobs = {j["name"]: j["properties"] for j in json.loads(listed.stdout)}
    assert jobs[job]["operation"] == "Backup" and jobs[job]["entityFriendlyName"] == "vm1"
    extensions = az_lab.az(
        "vm", "extension", "list", "-g", az_lab.group, "--vm-name", "vm1", "--query", "[].name"
    )
    assert "VMSnapshotLinux" in json.loads(extensions.stdout)


def test_errors_print_as_arm_error_bodies(az_lab: AzLab) -> None:
    done = az_lab.az("vm", "get-instance-view", "-g", az_lab.group, "-n", "no-such-vm")
    assert done.returncode == 3
    assert done.stderr.startswith("ERROR: (ResourceNotFound) The Resource ")


def test_the_sdk_works_with_the_same_exports(az_lab: AzLab) -> None:
    script = (
        "import os\n"
        "from azure.identity import DefaultAzureCredential\n"
        "from azure.mgmt.compute import ComputeManagementClient\n"
        "c = ComputeManagementClient(DefaultAzureCredential(), os.environ['AZURE_SUBSCRIPTION_ID'],"
        " base_url=os.environ['ARM_ENDPOINT'])\n"
        "iv = c.virtual_machines.instance_view(os.environ['AZURE_RESOURCE_GROUP'], 'vm1')\n"
        "print(iv.vm_agent.statuses[0].display_status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=az_lab.env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Ready"
