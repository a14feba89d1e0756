"""The worker's storage calls against a real Azurite on 127.0.0.1 (no Docker).

The fake blob endpoint of the other tests answers what we believe storage answers; this
test checks the belief with Azurite started as the lab's storage image starts it: the
disk size from ``HEAD`` with a SAS, ``PUT ?comp=snapshot`` with ``x-ms-version:
2019-02-02`` creating a real snapshot, and the BlockBlob status upload. Needs
``azurite-blob`` on PATH (as ``test_backup_azurite`` does, it fails rather than skips).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import pytest
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

from lab.extension import protocol
from lab.extension.handler.main.vmsnapshot import operations, worker
from tests.integration.azurite import azurite_container
from tests.integration.conftest import RUN_ID
from tests.unit.test_extension_fakes import GIB, GuestLayout

pytestmark = pytest.mark.integration

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.fixture
def azurite(docker_client: docker.DockerClient) -> Iterator[str]:
    with azurite_container(docker_client, f"it{RUN_ID}aze") as server:
        server.start()
        yield server.account_url


def sas_url(account_url: str, container: str, blob: str) -> str:
    token = generate_blob_sas(
        ACCOUNT,
        container,
        blob,
        account_key=KEY,
        permission=BlobSasPermissions(read=True, write=True, create=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    return f"{account_url}/{container}/{blob}?{token}"


def test_the_worker_snapshots_real_page_blobs_in_azurite(azurite: str, tmp_path: Path) -> None:
    service = BlobServiceClient(azurite, credential={"account_name": ACCOUNT, "account_key": KEY})
    service.create_container("vhds")
    service.create_container("status")
    service.get_blob_client("vhds", "vm1-os.vhd").create_page_blob(size=2 * GIB)
    disk = sas_url(azurite, "vhds", "vm1-os.vhd")
    status_blob = sas_url(azurite, "status", "vm1.status")

    layout = GuestLayout(tmp_path / "guest")
    layout.write_task(0, [disk], status_blob, task_id="azurite")
    jobs: list[worker.Job] = []
    operations.enable(layout.context(), layout.paths, {}, spawn=jobs.append)
    result = worker.run(jobs[0])

    assert (result.status, result.code) == ("success", protocol.CODE_SUCCESS), result.message
    listed = list(service.get_container_client("vhds").list_blobs(include=["snapshots"]))
    snapshots = [b.snapshot for b in listed if b.snapshot]
    assert [s.snapshot for s in result.snapshots] == snapshots
    log = layout.extension_log()
    assert f"GetBlobProperties: index: 0 blobUri: {disk.split('?')[0]} contentLength: " in log
    assert "(2.00 GiB)" in log and f"  Info  index: 0 blobUri: {disk.split('?')[0]} " in log
    uploaded = service.get_blob_client("status", "vm1.status").download_blob().readall()
    assert json.loads(uploaded) == layout.status(0)
