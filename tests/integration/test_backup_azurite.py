"""The storage side of a backup against a real Azurite on 127.0.0.1 (no Docker).

Needs ``azurite-blob`` on PATH (``npm install -g azurite@3.33.0``); without it this
test fails rather than skips, so a machine that lost Azurite cannot pass silently.
It starts Azurite with the flags the lab's storage image uses, and checks what the
fabric relies on: the provisioner waits for storage, disks are made once, a snapshot
taken over plain HTTP with the disk's SAS (as the extension takes it) is seen, and the
vault transfer copies the snapshot, not the disk as it is now.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import docker
import pytest
from azure.storage.blob import BlobServiceClient

from lab.extension.protocol import DiskSnapshot, SnapshotResult
from lab.platform.backup.azure_storage import DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME, AzuriteStorage
from lab.platform.backup.disks import (
    CONTENT_SIZE,
    OS_DISK_SIZE,
    disk_content,
    os_disk_name,
)
from lab.platform.backup.job import JobStatus, new_job
from lab.platform.backup.provisioner import StorageProvisioner
from lab.platform.backup.runner import BackupTimings, JobRunner
from lab.platform.backup.store import BackupStore
from lab.platform.clock import SystemClock
from tests.integration.azurite import AzuriteContainer, azurite_container
from tests.integration.conftest import RUN_ID
from tests.unit.backup_fakes import FakeAgent, FakeStorage, Push

pytestmark = pytest.mark.integration


@pytest.fixture
def azurite(docker_client: docker.DockerClient) -> Iterator[AzuriteContainer]:
    with azurite_container(docker_client, f"it{RUN_ID}az") as server:
        yield server  # started by the test: it first checks the provisioner waits for it


def put_snapshot(disk_sas_url: str) -> str:
    """What the extension does: ``PUT <disk SAS URL>&comp=snapshot``."""
    request = urllib.request.Request(f"{disk_sas_url}&comp=snapshot", data=b"", method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        return str(response.headers["x-ms-snapshot"])


@pytest.mark.filterwarnings("ignore:get_page_ranges is deprecated:DeprecationWarning")
def test_disks_snapshot_and_vault_transfer_on_real_azurite(azurite: AzuriteContainer) -> None:
    storage = AzuriteStorage(azurite.account_url)
    stop = threading.Event()
    provisioner = StorageProvisioner(storage, ["vm1", "vm2"], stop, retry_seconds=0.2)
    try:
        assert not provisioner.attempt()  # nothing listens yet: not ready, no exception
        provisioner.start()
        azurite.start()
        assert provisioner.done.wait(30), "the provisioner never saw storage"
    finally:
        stop.set()
    assert storage.ready()

    sdk = BlobServiceClient(
        azurite.account_url,
        credential={"account_name": DEV_ACCOUNT_NAME, "account_key": DEV_ACCOUNT_KEY},
    )
    assert {c.name for c in sdk.list_containers()} == {"vhds", "vault", "vmstatus"}
    (disk,) = storage.disks("vm1")
    blob = sdk.get_blob_client("vhds", os_disk_name("vm1"))
    properties = blob.get_blob_properties()
    assert properties.size == OS_DISK_SIZE and properties.blob_type == "PageBlob"
    assert blob.download_blob(offset=0, length=CONTENT_SIZE).readall() == disk_content("vm1")

    storage.ensure_layout(["vm1", "vm2"])  # a fabric restart: nothing is rewritten
    assert blob.get_blob_properties().etag == properties.etag

    expiry = datetime.now(UTC) + timedelta(minutes=5)
    snapshot = put_snapshot(storage.disk_sas_url(disk, expiry))
    assert storage.snapshot_exists(disk, snapshot)
    assert not storage.snapshot_exists(disk, "2000-01-01T00:00:00.0000000Z")

    blob.upload_page(b"\xff" * 512, offset=0, length=512)  # the disk moves on
    storage.transfer_to_vault(disk, snapshot, "vm1/job-1/vm1-osdisk.vhd", expiry)
    copy = sdk.get_blob_client("vault", "vm1/job-1/vm1-osdisk.vhd")
    copied = copy.get_blob_properties()
    assert copied.size == OS_DISK_SIZE
    assert copied.metadata == {"source_blob": "vm1-osdisk.vhd", "source_snapshot": snapshot}
    assert copy.download_blob(offset=0, length=CONTENT_SIZE).readall() == disk_content("vm1")
    ranges, _ = copy.get_page_ranges()
    assert sum(r["end"] + 1 - r["start"] for r in ranges) == CONTENT_SIZE

    status_url = storage.status_blob_sas_url("vm1", "task-1", expiry)
    upload = urllib.request.Request(
        status_url, data=b"[]", method="PUT", headers={"x-ms-blob-type": "BlockBlob"}
    )
    with urllib.request.urlopen(upload, timeout=10) as response:
        assert response.status == 201


def test_a_job_completes_against_real_storage(azurite: AzuriteContainer) -> None:
    """The runner over real Azurite, with a scripted extension that snapshots over HTTP."""
    azurite.start()
    storage = AzuriteStorage(azurite.account_url)
    storage.ensure_layout(["vm1"])
    clock = SystemClock()

    def extension(agent: FakeAgent, push: Push) -> None:
        taken = tuple(
            DiskSnapshot(uri.split("?", 1)[0], put_snapshot(uri))
            for uri in push.protected.disk_sas_uris
        )
        agent.report(push, SnapshotResult(push.public.task_id, "success", 1, "ok", taken))

    agent = FakeAgent(FakeStorage(), clock, behaviour=extension)
    store = BackupStore(":memory:")
    runner = JobRunner(
        store=store,
        storage=storage,
        agent=agent,
        clock=clock,
        sleep=time.sleep,
        timings=BackupTimings(time_scale=240.0, subtask_timeout=10.0, sas_expiry=60.0),
    )
    job = runner.run(new_job("job-1", "vm1", clock.now()))
    assert job.status is JobStatus.COMPLETED, job.to_json()
    (point,) = store.restore_points("vm1")
    (disk,) = point.disks
    assert disk.vault_blob == "vm1/job-1/vm1-osdisk.vhd"
    assert storage.snapshot_exists(storage.disks("vm1")[0], disk.snapshot)
