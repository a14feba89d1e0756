"""Disk layout and the Azurite client's URLs and SAS, without any network."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

from lab.platform.backup.azure_storage import (
    DEV_ACCOUNT_NAME,
    AzuriteStorage,
    account_url_for,
)
from lab.platform.backup.disks import (
    CONTENT_SIZE,
    HEADER_MAGIC,
    OS_DISK_SIZE,
    SECTOR,
    disk_content,
    disk_header,
    os_disk_name,
    status_blob_name,
    vault_blob_name,
)

EXPIRY = datetime(2026, 11, 27, 22, 0, 0, tzinfo=UTC)


def test_disk_content_is_recognisable_deterministic_and_per_vm() -> None:
    content = disk_content("vm1")
    assert len(content) == CONTENT_SIZE and CONTENT_SIZE % SECTOR == 0
    assert content[:SECTOR] == disk_header("vm1")
    assert content.startswith(HEADER_MAGIC)
    assert b"vm=vm1 size=32212254720" in content[:SECTOR]
    assert disk_content("vm1") == content
    assert disk_content("vm2")[SECTOR:] != content[SECTOR:]
    assert OS_DISK_SIZE == 30 * 1024**3 and OS_DISK_SIZE % SECTOR == 0


def test_blob_names() -> None:
    assert os_disk_name("vm1") == "vm1-osdisk.vhd"
    assert vault_blob_name("vm1", "job", "vm1-osdisk.vhd") == "vm1/job/vm1-osdisk.vhd"
    assert status_blob_name("vm1", "task") == "vm1/task.status"


def test_urls_are_path_style_on_a_lab_address() -> None:
    storage = AzuriteStorage(account_url_for("10.199.0.3"))
    assert storage.account_url == "http://10.199.0.3:10000/devstoreaccount1"
    assert not storage.ready()
    (disk,) = storage.disks("vm1")
    assert disk.url == "http://10.199.0.3:10000/devstoreaccount1/vhds/vm1-osdisk.vhd"
    assert disk.size_bytes == OS_DISK_SIZE


def test_disk_sas_reads_writes_creates_and_expires() -> None:
    storage = AzuriteStorage(account_url_for("10.199.0.3"))
    (disk,) = storage.disks("vm1")
    url = storage.disk_sas_url(disk, EXPIRY)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == disk.url
    query = parse_qs(parts.query)
    assert query["sp"] == ["rcw"]
    assert query["sr"] == ["b"]
    assert query["se"] == ["2026-11-27T22:00:00Z"]
    assert query["sig"]


def test_status_blob_sas_points_into_the_status_container() -> None:
    storage = AzuriteStorage(account_url_for("10.199.0.3"))
    url = storage.status_blob_sas_url("vm1", "task-1", EXPIRY)
    parts = urlsplit(url)
    assert parts.path == f"/{DEV_ACCOUNT_NAME}/vmstatus/vm1/task-1.status"
    assert parse_qs(parts.query)["sp"] == ["rcw"]
