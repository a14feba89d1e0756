"""Microsoft.Compute on a real lab, with ``azure-mgmt-compute`` only.

The VM document says what the guest is (size from its real limits, image, disk and NIC
ids); ``begin_run_command`` on a healthy VM returns the script's output, carried out by
the lab's RunCommandLinux handler that the real agent downloads, installs and enables;
with the agent stopped it fails with Azure's ``VMAgentStatusCommunicationError``, and so it
does with extensions disabled in ``waagent.conf`` (2.7.3.0 ignores the extension and reports
nothing for it); deallocate and start. The guest is only touched (through
Docker) to break and mend the agent, which the test needs and a runbook would do over SSH.
How long a Run Command takes (first install, later runs) is printed (``-s``).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import docker
import pytest
from azure.core.exceptions import HttpResponseError

from lab.platform.arm import naming
from lab.provision import lab as labs
from lab.provision.spec import VmSpec
from tests.integration.conftest import RUN_ID, RunningLab, _bring_up

pytestmark = pytest.mark.integration

SCRIPT = {"commandId": "RunShellScript", "script": ["echo hello", "uname -s"]}


@pytest.fixture(scope="module")
def compute_lab(docker_client: docker.DockerClient) -> Iterator[RunningLab]:
    running = _bring_up(docker_client, f"hf{RUN_ID}", (VmSpec("vm1"), VmSpec("vm2")))
    try:
        yield running
    finally:
        labs.down(docker_client, running.name)


def _guest(lab: RunningLab, vm: str, script: str) -> None:
    container = lab.roster.guest_by_name(vm).container  # type: ignore[union-attr]
    subprocess.run(["docker", "exec", container, "bash", "-c", script], check=True, timeout=60)


def _run(lab: RunningLab, vm: str) -> tuple[str, float]:
    compute, arm = lab.compute()
    started = time.monotonic()
    try:
        result = compute.virtual_machines.begin_run_command(
            arm.resource_group, vm, SCRIPT, polling_interval=1
        ).result()
    finally:
        compute.close()
    return str(result.value[0].message), time.monotonic() - started


def _failure(lab: RunningLab, vm: str) -> tuple[str, str, float]:
    compute, arm = lab.compute()
    started = time.monotonic()
    try:
        poller = compute.virtual_machines.begin_run_command(
            arm.resource_group, vm, SCRIPT, polling_interval=1
        )
        with pytest.raises(HttpResponseError) as raised:
            poller.result()
    finally:
        compute.close()
    error = raised.value.error
    assert error is not None
    return str(error.code), str(error.message), time.monotonic() - started


def test_the_vm_document(compute_lab: RunningLab) -> None:
    compute, arm = compute_lab.compute()
    try:
        vm = compute.virtual_machines.get(arm.resource_group, "vm1")
        listed = [v.name for v in compute.virtual_machines.list_all()]
    finally:
        compute.close()
    assert vm.hardware_profile.vm_size == "Standard_B1s"
    assert vm.network_profile.network_interfaces[0].id == naming.nic_id(compute_lab.roster, "vm1")
    disk = vm.storage_profile.os_disk
    assert disk.managed_disk.id == naming.disk_id(
        compute_lab.roster, naming.os_disk_name(compute_lab.roster, "vm1")
    )
    assert disk.disk_size_gb == 30
    assert vm.storage_profile.image_reference.offer == "debian-12"
    assert listed == ["vm1", "vm2"]


def test_run_command_returns_the_scripts_output(compute_lab: RunningLab) -> None:
    first, first_seconds = _run(compute_lab, "vm1")
    assert first == "Enable succeeded: \n[stdout]\nhello\nLinux\n\n[stderr]\n"
    second, second_seconds = _run(compute_lab, "vm1")
    assert second == first
    print(f"\nrun command: first (install) {first_seconds:.1f} s, later {second_seconds:.1f} s")


def test_run_command_with_the_agent_stopped(compute_lab: RunningLab) -> None:
    _guest(compute_lab, "vm2", "systemctl stop walinuxagent")
    code, message, seconds = _failure(compute_lab, "vm2")
    print(f"\nrun command, agent stopped: {code} after {seconds:.1f} s")
    assert code == "VMAgentStatusCommunicationError"
    assert message.startswith("VM 'vm2' has not reported status for VM agent or extensions.")


def test_run_command_with_extensions_disabled(compute_lab: RunningLab) -> None:
    """2.7.3.0 with extensions off checks goal states every 5 minutes (unscaled) and then
    reports the new settings only as "transitioning": once it has made its first report
    after the restart, the Run Command meets the 30-second window (25 Azure minutes) with
    no status for its settings. On Azure's clock the agent's 5-minute report comes first
    and the operation times out instead (VMExtensionProvisioningTimeout after 90 minutes)."""
    before = compute_lab.fabric.vm("vm1")["agent"]["last_report"]
    _guest(
        compute_lab,
        "vm1",
        "sed -i 's/^#\\? *Extensions.Enabled=.*/Extensions.Enabled=n/' /etc/waagent.conf && "
        "grep -q '^Extensions.Enabled=n' /etc/waagent.conf || "
        "echo Extensions.Enabled=n >> /etc/waagent.conf; systemctl restart walinuxagent",
    )
    deadline = time.monotonic() + 60
    while compute_lab.fabric.vm("vm1")["agent"]["last_report"] == before:
        assert time.monotonic() < deadline, "the restarted agent never reported"
        time.sleep(1)
    time.sleep(2)  # past the goal-state fetch that came with that first report
    try:
        code, message, seconds = _failure(compute_lab, "vm1")
    finally:
        _guest(
            compute_lab,
            "vm1",
            "sed -i '/^Extensions.Enabled=n/d' /etc/waagent.conf; systemctl restart walinuxagent",
        )
    print(f"\nrun command, extensions disabled: {code} after {seconds:.1f} s")
    assert code == "VMAgentStatusCommunicationError"
    assert message.startswith("VM 'vm1' has not reported status for VM agent or extensions.")


def test_deallocate_and_start(compute_lab: RunningLab) -> None:
    compute, arm = compute_lab.compute()
    try:
        compute.virtual_machines.begin_deallocate(
            arm.resource_group, "vm2", polling_interval=1
        ).result()
        view = compute.virtual_machines.instance_view(arm.resource_group, "vm2")
        assert "PowerState/deallocated" in [s.code for s in view.statuses]
        container = compute_lab.client.containers.get(
            compute_lab.roster.guest_by_name("vm2").container  # type: ignore[union-attr]
        )
        assert container.status == "exited"
        time.sleep(2)  # the host's watcher has looked: a deallocated VM stays deallocated
        view = compute.virtual_machines.instance_view(arm.resource_group, "vm2")
        assert "PowerState/deallocated" in [s.code for s in view.statuses]
        compute.virtual_machines.begin_start(arm.resource_group, "vm2", polling_interval=1).result()
        view = compute.virtual_machines.instance_view(arm.resource_group, "vm2")
        assert "PowerState/running" in [s.code for s in view.statuses]
    finally:
        compute.close()
