"""The storage seam over Azurite, with the azure-storage-blob SDK.

Runs in the fabric container on Debian bookworm's ``python3-azure-storage`` (the
12.14-era SDK), so only long-standing calls are used: connection string, container and
blob clients, ``generate_blob_sas``, page blobs, ``list_blobs(include=["snapshots"])``.

The vault transfer copies the snapshot's *written page ranges* through the fabric
rather than asking storage for a server-side copy: Azurite 3.33 answers Put Page From
URL with ``APINotImplemented`` and materialises a whole 30 GiB page blob in memory on
Copy Blob (its Node heap runs out and the storage container dies). Reading only the
written ranges is also what Azure's incremental transfer does, and it moves a few MiB.

Retries are kept short: the SDK's default policy backs off 15 s and more between tries,
and both the start-up provisioner and a job want to know quickly that storage is away.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterable
from datetime import datetime

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import (
    BlobClient,
    BlobSasPermissions,
    BlobServiceClient,
    LinearRetry,
    generate_blob_sas,
)

from lab.platform.backup.disks import (
    CONTAINERS,
    DISK_CONTAINER,
    MAX_PAGE_WRITE,
    OS_DISK_SIZE,
    SECTOR,
    STATUS_CONTAINER,
    VAULT_CONTAINER,
    disk_content,
    disk_header,
    os_disk_name,
    status_blob_name,
)
from lab.platform.backup.storage import Disk, StorageError

# Azurite's well-known development account (published in Microsoft's Azurite docs).
DEV_ACCOUNT_NAME = "devstoreaccount1"
DEV_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURITE_BLOB_PORT = 10000

RETRY_TOTAL = 2
RETRY_BACKOFF = 1
CONNECTION_TIMEOUT = 5
READ_TIMEOUT = 30


def _retry_policy() -> LinearRetry:
    """A fresh short retry policy (a policy instance belongs to one client)."""
    return LinearRetry(backoff=RETRY_BACKOFF, retry_total=RETRY_TOTAL, random_jitter_range=1)


def account_url_for(storage_ip: str, port: int = AZURITE_BLOB_PORT) -> str:
    """Azurite's path-style blob endpoint for the dev account on a host."""
    return f"http://{storage_ip}:{port}/{DEV_ACCOUNT_NAME}"


class AzuriteStorage:
    """:class:`~lab.platform.backup.storage.BackupStorage` over an Azurite account."""

    def __init__(
        self,
        account_url: str,
        *,
        account_name: str = DEV_ACCOUNT_NAME,
        account_key: str = DEV_ACCOUNT_KEY,
    ) -> None:
        self._account_url = account_url.rstrip("/")
        self._account_name = account_name
        self._account_key = account_key
        connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={account_name};"
            f"AccountKey={account_key};BlobEndpoint={self._account_url};"
        )
        self._service = BlobServiceClient.from_connection_string(
            connection_string,
            retry_policy=_retry_policy(),
            connection_timeout=CONNECTION_TIMEOUT,
            read_timeout=READ_TIMEOUT,
        )
        self._ready = threading.Event()

    @property
    def account_url(self) -> str:
        return self._account_url

    def ready(self) -> bool:
        return self._ready.is_set()

    # ------------------------------------------------------------------ layout

    def ensure_layout(self, vms: Iterable[str]) -> None:
        """Create the containers and every VM's OS disk; idempotent across restarts.

        Raises :class:`StorageError` while storage does not answer; marks the storage
        ready only once everything exists.
        """
        try:
            for name in CONTAINERS:
                with contextlib.suppress(ResourceExistsError):
                    self._service.get_container_client(name).create_container()
            for vm in vms:
                self._ensure_os_disk(vm)
        except AzureError as exc:
            raise StorageError(f"storage at {self._account_url}: {exc}") from exc
        self._ready.set()

    def _ensure_os_disk(self, vm: str) -> None:
        blob = self._service.get_blob_client(DISK_CONTAINER, os_disk_name(vm))
        try:
            size = blob.get_blob_properties().size
        except ResourceNotFoundError:
            blob.create_page_blob(OS_DISK_SIZE)
            size = OS_DISK_SIZE
        if size != OS_DISK_SIZE:
            blob.resize_blob(OS_DISK_SIZE)
        if blob.download_blob(offset=0, length=SECTOR).readall() == disk_header(vm):
            return  # written by an earlier start: keep it (and its snapshots) as it is
        content = disk_content(vm)
        for offset in range(0, len(content), MAX_PAGE_WRITE):
            page = content[offset : offset + MAX_PAGE_WRITE]
            blob.upload_page(page, offset=offset, length=len(page))

    # ------------------------------------------------------------------ disks and SAS

    def disks(self, vm: str) -> list[Disk]:
        name = os_disk_name(vm)
        return [Disk(name, self._blob_url(DISK_CONTAINER, name), OS_DISK_SIZE)]

    def _blob_url(self, container: str, blob: str) -> str:
        return str(self._service.get_blob_client(container, blob).url)

    def _sas(
        self,
        container: str,
        blob: str,
        permission: BlobSasPermissions,
        expiry: datetime,
        snapshot: str | None = None,
    ) -> str:
        return str(
            generate_blob_sas(
                self._account_name,
                container,
                blob,
                snapshot=snapshot,
                account_key=self._account_key,
                permission=permission,
                expiry=expiry,
            )
        )

    def disk_sas_url(self, disk: Disk, expiry: datetime) -> str:
        permission = BlobSasPermissions(read=True, write=True, create=True)
        return f"{disk.url}?{self._sas(DISK_CONTAINER, disk.name, permission, expiry)}"

    def status_blob_sas_url(self, vm: str, task_id: str, expiry: datetime) -> str:
        name = status_blob_name(vm, task_id)
        permission = BlobSasPermissions(read=True, write=True, create=True)
        sas = self._sas(STATUS_CONTAINER, name, permission, expiry)
        return f"{self._blob_url(STATUS_CONTAINER, name)}?{sas}"

    # ------------------------------------------------------------------ snapshots

    def snapshot_exists(self, disk: Disk, snapshot: str) -> bool:
        container = self._service.get_container_client(DISK_CONTAINER)
        try:
            return any(
                item.name == disk.name and item.snapshot == snapshot
                for item in container.list_blobs(name_starts_with=disk.name, include=["snapshots"])
            )
        except AzureError as exc:
            raise StorageError(f"listing snapshots of {disk.name}: {exc}") from exc

    def snapshot_disk(self, disk: Disk) -> str:
        """``PUT <disk>?comp=snapshot`` with the account key, as the host does for a
        stopped VM (no extension, no SAS handed out)."""
        blob = self._service.get_blob_client(DISK_CONTAINER, disk.name)
        try:
            created = blob.create_snapshot()
        except AzureError as exc:
            raise StorageError(f"snapshot of {disk.name}: {exc}") from exc
        snapshot = created.get("snapshot") if isinstance(created, dict) else None
        if not isinstance(snapshot, str) or not snapshot:
            raise StorageError(f"snapshot of {disk.name}: storage returned no snapshot time")
        return snapshot

    def transfer_to_vault(
        self, disk: Disk, snapshot: str, vault_blob: str, expiry: datetime
    ) -> None:
        """Copy the snapshot's written ranges into a vault page blob of the same size,
        reading the snapshot through a read-only SAS as the vault service would."""
        sas = self._sas(DISK_CONTAINER, disk.name, BlobSasPermissions(read=True), expiry, snapshot)
        source = BlobClient(
            self._account_url,
            DISK_CONTAINER,
            disk.name,
            snapshot=snapshot,
            credential=sas,
            retry_policy=_retry_policy(),
            connection_timeout=CONNECTION_TIMEOUT,
            read_timeout=READ_TIMEOUT,
        )
        target = self._service.get_blob_client(VAULT_CONTAINER, vault_blob)
        try:
            size = source.get_blob_properties().size
            with warnings.catch_warnings():  # deprecated after 12.14, still there
                warnings.simplefilter("ignore", DeprecationWarning)
                ranges, _cleared = source.get_page_ranges()
            # Copy Blob would record its source on the target; say it in metadata.
            target.create_page_blob(
                size, metadata={"source_blob": disk.name, "source_snapshot": snapshot}
            )
            for written in ranges:
                start, end = int(written["start"]), int(written["end"]) + 1
                for offset in range(start, end, MAX_PAGE_WRITE):
                    length = min(MAX_PAGE_WRITE, end - offset)
                    data = source.download_blob(offset=offset, length=length).readall()
                    target.upload_page(data, offset=offset, length=length)
        except AzureError as exc:
            raise StorageError(f"copying {disk.name}@{snapshot} to the vault: {exc}") from exc
