"""Backups end like Azure's: the real agent runs our VMSnapshot extension, which takes
real blob snapshots in Azurite; a dead agent ends in the snapshot sub-task timeout."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from lab.extension.protocol import HANDLER_NAME
from lab.provision import backups
from tests.integration.conftest import AGENT_VMS, RunningLab

pytestmark = pytest.mark.integration

VMS = [pytest.param(vm.name, vm.agent, id=vm.agent) for vm in AGENT_VMS]
HANDLER_GLOB = f"/var/lib/waagent/{HANDLER_NAME}-*"
LOG_DIR = f"/var/log/azure/{HANDLER_NAME}"


def run_backup(lab: RunningLab, vm: str) -> dict[str, Any]:
    job = backups.start(lab.roster, vm)
    return backups.follow(lab.roster, job, lambda _: None)


def snapshots_of(lab: RunningLab, vm: str) -> list[str]:
    blobs = lab.storage().get_container_client("vhds")
    return sorted(
        b.snapshot
        for b in blobs.list_blobs(name_starts_with=f"{vm}-", include=["snapshots"])
        if b.snapshot
    )


def wait_agent_ready(lab: RunningLab, vm: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while lab.fabric.vm(vm)["agent"]["status"] != "Ready":
        assert time.monotonic() < deadline, f"{vm}: agent not Ready again after {seconds} s"
        time.sleep(0.5)


def handler_dir(lab: RunningLab, vm: str) -> str | None:
    found = lab.host(vm).run(f"ls -d {HANDLER_GLOB}")
    return found.stdout.strip().splitlines()[-1] if found.rc == 0 and found.stdout.strip() else None


@pytest.mark.parametrize(("vm", "agent"), VMS)
def test_healthy_backup_completes_with_real_snapshots(
    agents_lab: RunningLab, vm: str, agent: str
) -> None:
    before = snapshots_of(agents_lab, vm)
    job = run_backup(agents_lab, vm)

    assert job["status"] == "Completed", job
    assert [s["name"] for s in job["subtasks"]] == ["Take Snapshot", "Transfer data to vault"]
    assert all(s["status"] == "Completed" for s in job["subtasks"])
    after = snapshots_of(agents_lab, vm)
    assert len(after) == len(before) + 1

    points = {p["job_id"]: p for p in agents_lab.fabric.restore_points(vm)}
    point = points[job["job_id"]]
    vault = agents_lab.storage().get_container_client("vault")
    for disk in point["disks"]:
        assert disk["snapshot"] in after
        copy = vault.get_blob_client(disk["vault_blob"]).get_blob_properties()
        assert copy.metadata["source_snapshot"] == disk["snapshot"]


@pytest.mark.parametrize(("vm", "agent"), VMS)
def test_handler_lives_where_the_real_one_does(agents_lab: RunningLab, vm: str, agent: str) -> None:
    host = agents_lab.host(vm)
    folder = handler_dir(agents_lab, vm)
    assert folder is not None
    assert host.file(f"{folder}/HandlerManifest.json").exists
    assert host.file(f"{folder}/HandlerEnvironment.json").exists
    assert host.file(f"{folder}/config/HandlerState").content_string.strip() == "Enabled"
    newest = f"ls {folder}/config | grep -E '^[0-9]+\\.settings$' | sort -n | tail -1"
    seq = int(host.check_output(newest).split(".")[0])
    settings = json.loads(host.file(f"{folder}/config/{seq}.settings").content_string)
    handler = settings["runtimeSettings"][0]["handlerSettings"]
    assert handler["publicSettings"]["commandToExecute"] == "snapshot"
    assert handler["protectedSettingsCertThumbprint"]
    status = json.loads(host.file(f"{folder}/status/{seq}.status").content_string)
    assert status[0]["status"]["status"] == "success"
    for log in ("extension.log", "shell.log"):
        assert host.file(f"{LOG_DIR}/{log}").size > 0
    # The real extension's shapes, with the HandlerEnvironment.json this agent wrote:
    # "<utcnow> [<name>-1.0]<message>" and shell.log's "`date -u`- <message>".
    extension_log = host.file(f"{LOG_DIR}/extension.log").content_string
    prefix = f"[{HANDLER_NAME}-1.0]"
    assert re.search(rf"^\S+ \S+ {re.escape(prefix)}starting enable: ", extension_log, re.M)
    assert re.search(r"  Info  index: 0 blobUri: https?://\S+ $", extension_log, re.M)
    assert re.search(rf"{re.escape(prefix)}Enable,success,[01],Enable Succeeded", extension_log)
    shell_log = host.file(f"{LOG_DIR}/shell.log").content_string.splitlines()
    assert re.fullmatch(
        r"\w{3} \w{3} [ \d]\d [\d:]{8} UTC \d{4}- \d+ returned from handle.py", shell_log[-1]
    )


def test_stopped_agent_times_out_and_takes_no_snapshot(agents_lab: RunningLab) -> None:
    vm = AGENT_VMS[1].name
    host = agents_lab.host(vm)
    before = snapshots_of(agents_lab, vm)
    host.check_output("systemctl stop walinuxagent")
    try:
        job = run_backup(agents_lab, vm)
        # Checked before the agent comes back: a restarted agent still runs the pending
        # goal state, and the extension takes a late snapshot unless 140 Azure minutes
        # have passed — as an orphaned snapshot on Azure would be.
        after_job = snapshots_of(agents_lab, vm)
    finally:
        host.check_output("systemctl start walinuxagent")
        wait_agent_ready(agents_lab, vm)
    assert after_job == before
    assert job["status"] == "Failed"
    assert job["error_code"] in (
        "GuestAgentSnapshotTaskStatusError",
        "UserErrorGuestAgentStatusUnavailable",
    )
    if job["error_code"] == "GuestAgentSnapshotTaskStatusError":
        assert job["error_message"] == (
            "Could not communicate with the VM agent for snapshot status - "
            "Snapshot VM sub-task timed out"
        )


def test_deleted_extension_is_uninstalled_and_the_next_backup_reinstalls_it(
    agents_lab: RunningLab,
) -> None:
    vm = AGENT_VMS[1].name
    first = run_backup(agents_lab, vm)
    assert first["status"] == "Completed", first
    compute, arm = agents_lab.compute()
    names = [e.name for e in compute.virtual_machine_extensions.list(arm.resource_group, vm).value]
    assert "VMSnapshotLinux" in names
    extensions = compute.virtual_machine_extensions
    extensions.begin_delete(arm.resource_group, vm, "VMSnapshotLinux").result()

    deadline = time.monotonic() + 60
    while handler_dir(agents_lab, vm) is not None and time.monotonic() < deadline:
        time.sleep(1)
    assert handler_dir(agents_lab, vm) is None, "the agent did not uninstall the handler"

    job = run_backup(agents_lab, vm)
    assert job["status"] == "Completed", job
    assert handler_dir(agents_lab, vm) is not None
