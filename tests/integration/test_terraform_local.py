"""terraform/local against the real CLI and Docker: `terraform apply -var
scenario=blocked-egress` gives a lab whose VM the Azure SDK finds at the output endpoint,
whose backup fails with the scenario's error, whose outputs outlive the files they came
from, and `terraform destroy` leaves nothing; the module's own apply test
(tests/lab/apply.tftest.hcl) passes and leaves nothing either."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from azure.identity import DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient

from lab.provision.state_dir import lab_dir
from lab.scenario import load_scenario
from tests.integration.conftest import RUN_ID
from tests.integration.test_lifecycle import leftovers

pytestmark = pytest.mark.integration

MODULE = Path(__file__).resolve().parents[2] / "terraform" / "local"
SNAPLAB = Path(sys.executable).with_name("snaplab")
SCENARIO = "blocked-egress"


class Terraform:
    """`terraform` in a clean copy of the module, offline (built-in providers only)."""

    def __init__(self, tmp_path: Path) -> None:
        if shutil.which("terraform") is None:
            pytest.fail("terraform is not on PATH (the README names Terraform >= 1.9 as needed)")
        self.dir = tmp_path / "local"
        shutil.copytree(
            MODULE, self.dir, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*", ".snaplab")
        )
        rc = tmp_path / "terraformrc"
        rc.write_text("")
        self.env = {**os.environ, "TF_CLI_CONFIG_FILE": str(rc), "TF_IN_AUTOMATION": "1"}
        self.run("init", "-input=false")

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["terraform", *args, "-no-color"],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"terraform {args[0]}:\n{done.stdout}\n{done.stderr}"
        return done


def _snaplab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SNAPLAB), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def lab_name() -> Iterator[str]:
    """A lab name of this run (prefix tfl); taken down whatever the test did."""
    name = f"tfl{RUN_ID}"[:20]
    yield name
    _snaplab("down", name, "--missing-ok")


def _nothing_left(client: docker.DockerClient, lab: str) -> None:
    assert leftovers(client, lab) == []
    assert not lab_dir(lab).exists()


def test_apply_scenario_backup_fails_and_destroy_leaves_nothing(
    tmp_path: Path,
    lab_name: str,
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terraform = Terraform(tmp_path)
    variables = ["-var", f"scenario={SCENARIO}", "-var", f"lab_name={lab_name}"]
    variables += ["-var", f"snaplab={SNAPLAB}"]
    terraform.run("apply", "-auto-approve", "-input=false", *variables)

    outputs = {
        k: v["value"] for k, v in json.loads(terraform.run("output", "-json").stdout).items()
    }
    assert outputs["lab_name"] == lab_name
    assert sorted(outputs["vms"]) == ["vm1"]
    assert outputs["arm_endpoint"].startswith("https://127.0.0.1:")

    # The Azure SDK with nothing but the exports: DefaultAzureCredential finds the lab's
    # managed identity, REQUESTS_CA_BUNDLE trusts its CA.
    for key, value in outputs["env"].items():
        monkeypatch.setenv(key, value)
    compute = ComputeManagementClient(
        DefaultAzureCredential(), outputs["subscription_id"], base_url=outputs["arm_endpoint"]
    )
    vm = compute.virtual_machines.get(outputs["resource_group"], "vm1")
    assert vm.name == "vm1"
    agent = compute.virtual_machines.instance_view(outputs["resource_group"], "vm1").vm_agent
    assert agent is not None and agent.statuses
    # blocked-egress leaves the agent alone (the NSG blocks storage, not the WireServer).
    assert agent.statuses[0].display_status == "Ready" == outputs["vms"]["vm1"]["agent_status"]
    assert agent.vm_agent_version == outputs["vms"]["vm1"]["agent_version"]

    backup = _snaplab("backup", "vm1", "--lab", lab_name, "--wait", "--json")
    assert backup.returncode == 1, backup.stdout + backup.stderr
    job = json.loads(backup.stdout)
    assert job["status"] == "Failed"
    assert job["error_code"] == load_scenario(SCENARIO).spec.expect.backup_error

    # The outputs live in state: the files they were read from may go.
    shutil.rmtree(terraform.dir / ".snaplab")
    plan = terraform.run("plan", "-input=false", *variables)
    assert "No changes." in plan.stdout
    assert json.loads(terraform.run("output", "-json", "lab_name").stdout) == lab_name

    terraform.run("destroy", "-auto-approve", "-input=false", *variables)
    _nothing_left(docker_client, lab_name)


def test_the_modules_apply_test_passes_and_leaves_nothing(
    tmp_path: Path, lab_name: str, docker_client: docker.DockerClient
) -> None:
    terraform = Terraform(tmp_path)
    junit = tmp_path / "apply.xml"
    done = terraform.run(
        "test",
        "-test-directory=tests/lab",
        f"-junit-xml={junit}",
        "-var",
        f"lab_name={lab_name}",
        "-var",
        f"snaplab={SNAPLAB}",
    )
    assert done.stdout.strip().splitlines()[-1] == "Success! 1 passed, 0 failed."
    _nothing_left(docker_client, lab_name)
