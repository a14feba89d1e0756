"""The handler's commands in-process: enable answers at once, settings are read and
decrypted like the real extension reads them, bad input ends in an error status."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from lab.extension import protocol
from lab.extension.handler.main.vmsnapshot import cli, operations, worker
from lab.extension.handler.main.vmsnapshot.settings import load_task
from tests.unit.test_extension_fakes import GuestLayout

DISKS = ["http://127.0.0.1:9/devstoreaccount1/vhds/vm1-os.vhd?sv=x&sig=y"]
STATUS_BLOB = "http://127.0.0.1:9/devstoreaccount1/status/vm1.status?sv=x&sig=y"


@pytest.fixture
def layout(tmp_path: Path) -> GuestLayout:
    return GuestLayout(tmp_path / "guest")


def enable(layout: GuestLayout, env: dict[str, str] | None = None) -> list[worker.Job]:
    jobs: list[worker.Job] = []
    rc = operations.enable(layout.context(), layout.paths, env or {}, spawn=jobs.append)
    assert rc == 0
    return jobs


def test_enable_writes_transitioning_and_hands_the_task_to_a_worker(layout: GuestLayout) -> None:
    layout.write_task(3, DISKS, STATUS_BLOB, task_id="t-42")
    started = time.monotonic()
    jobs = enable(layout, {"ConfigSequenceNumber": "3"})
    assert time.monotonic() - started < 0.5
    status = layout.status(3)[0]
    assert status["version"] == "1.0"
    assert status["status"]["operation"] == "Enable"
    assert status["status"]["name"] == protocol.HANDLER_NAME
    result = layout.result(3)
    assert (result.status, result.code, result.task_id) == ("transitioning", 4, "t-42")
    [job] = jobs
    assert job.task.seq == 3
    assert job.task.protected.disk_sas_uris == tuple(DISKS)
    assert (layout.handler_dir / "mrseq").read_text() == "3"
    assert "starting the daemon" in layout.extension_log()


def test_invalid_settings_end_in_an_error_status_not_a_failed_command(layout: GuestLayout) -> None:
    public = protocol.PublicSettings("t-bad", protocol.from_ticks(638_000_000_000_000_000))
    raw = public.to_json()
    del raw["commandStartTimeUTCTicks"]
    layout.write_settings(0, raw, {"objectStr": "not base64!", "statusBlobUri": STATUS_BLOB})
    assert enable(layout) == []
    result = layout.result(0)
    assert (result.status, result.code, result.task_id) == ("error", 11, "t-bad")
    assert result.message.startswith("required field empty or not correct")
    assert "commandStartTimeUTCTicks" in result.message


def test_a_command_other_than_snapshot_is_invalid(layout: GuestLayout) -> None:
    layout.write_task(0, DISKS, STATUS_BLOB)
    settings = layout.handler_dir / "config/0.settings"
    doc = json.loads(settings.read_text())
    doc["runtimeSettings"][0]["handlerSettings"]["publicSettings"]["commandToExecute"] = "delete"
    settings.write_text(json.dumps(doc))
    enable(layout)
    assert layout.result(0).code == protocol.CODE_INVALID_SETTINGS
    assert "'delete'" in layout.result(0).message


def test_without_settings_enable_does_nothing(layout: GuestLayout) -> None:
    assert enable(layout) == []
    assert list((layout.handler_dir / "status").iterdir()) == []


def test_the_newest_settings_file_wins_without_config_sequence_number(
    layout: GuestLayout,
) -> None:
    layout.write_task(5, DISKS, STATUS_BLOB, task_id="newest")
    older = layout.write_task(7, DISKS, STATUS_BLOB, task_id="older")
    os.utime(older, (1, 1))
    [job] = enable(layout)
    assert (job.task.seq, job.task.public.task_id) == (5, "newest")
    assert (layout.handler_dir / "config/7_settings").exists(), "older seq set aside"
    assert not (layout.handler_dir / "config/7.settings").exists()


def test_a_sequence_number_is_enabled_once(layout: GuestLayout) -> None:
    layout.write_task(1, DISKS, STATUS_BLOB, task_id="a")
    assert len(enable(layout, {"ConfigSequenceNumber": "1"})) == 1
    assert enable(layout, {"ConfigSequenceNumber": "1"}) == []
    assert "the sequence number are same, so skip, current:1== last:1" in layout.extension_log()


def test_a_repeated_task_id_is_not_run_again_and_gets_no_status(layout: GuestLayout) -> None:
    layout.write_task(1, DISKS, STATUS_BLOB, task_id="same")
    assert len(enable(layout, {"ConfigSequenceNumber": "1"})) == 1
    layout.write_task(2, DISKS, STATUS_BLOB, task_id="same")
    assert enable(layout, {"ConfigSequenceNumber": "2"}) == []
    assert not (layout.handler_dir / "status/2.status").exists()
    assert "TaskId AlreadyProcessed nothing to do" in layout.extension_log()


def test_a_worker_that_cannot_start_is_reported(layout: GuestLayout) -> None:
    layout.write_task(0, DISKS, STATUS_BLOB)

    def broken(job: worker.Job) -> None:
        raise OSError("fork failed")

    assert operations.enable(layout.context(), layout.paths, {}, spawn=broken) == 0
    result = layout.result(0)
    assert (result.status, result.code) == ("error", protocol.CODE_ERROR)
    assert result.message == "Failed to call the daemon: fork failed"


# --- protected settings: encrypted to the tenant certificate, or plain


def openssl(*args: str, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def tenant_certificate(lib: Path) -> str:
    """A certificate and key stored as the agent stores them; returns the thumbprint."""
    lib.mkdir(parents=True, exist_ok=True)
    cert, key = lib / "tenant.crt", lib / "tenant.prv"
    openssl(
        *("req", "-x509", "-nodes", "-subj", "/CN=tenant", "-days", "2"),
        *("-newkey", "rsa:2048", "-keyout", str(key), "-out", str(cert)),
    )
    fingerprint = openssl("x509", "-in", str(cert), "-noout", "-fingerprint", "-sha1").decode()
    thumbprint = fingerprint.split("=", 1)[1].strip().replace(":", "").upper()
    cert.rename(lib / f"{thumbprint}.crt")
    key.rename(lib / f"{thumbprint}.prv")
    return thumbprint


def encrypt(settings: dict[str, object], cert: Path) -> str:
    """What CRP (and the lab's fabric) put in protectedSettings."""
    der = openssl(
        *("smime", "-encrypt", "-binary", "-des3", "-outform", "DER", str(cert)),
        stdin=json.dumps(settings).encode(),
    )
    return base64.b64encode(der).decode()


def test_encrypted_protected_settings_are_decrypted_with_the_tenant_key(
    layout: GuestLayout,
) -> None:
    lib = layout.root / "var/lib/waagent"
    thumbprint = tenant_certificate(lib)
    protected = protocol.ProtectedSettings(tuple(DISKS), STATUS_BLOB, None)
    public = protocol.PublicSettings("t-enc", protocol.from_ticks(638_000_000_000_000_000))
    secret = encrypt(protected.to_json(), lib / f"{thumbprint}.crt")
    path = layout.write_settings(0, public.to_json(), secret, thumbprint)
    task = load_task(path, 0, layout.paths)
    assert task.protected == protected
    assert task.thumbprint == thumbprint


def test_a_missing_certificate_is_reported_as_certificate_not_found(layout: GuestLayout) -> None:
    public = protocol.PublicSettings("t-nocert", protocol.from_ticks(638_000_000_000_000_000))
    layout.write_settings(0, public.to_json(), base64.b64encode(b"junk").decode(), "AB" * 20)
    enable(layout)
    result = layout.result(0)
    assert (result.status, result.code) == ("error", protocol.CODE_CERTIFICATE_NOT_FOUND)
    assert result.message.startswith("unable to load certificate")


def test_plain_json_text_protected_settings_are_accepted(layout: GuestLayout) -> None:
    protected = protocol.ProtectedSettings(tuple(DISKS), STATUS_BLOB)
    public = protocol.PublicSettings("t-text", protocol.from_ticks(638_000_000_000_000_000))
    path = layout.write_settings(0, public.to_json(), json.dumps(protected.to_json()))
    assert load_task(path, 0, layout.paths).protected == protected


# --- the other commands and the entry point


def test_install_prepares_etc_azure_and_every_command_exits_0(tmp_path: Path) -> None:
    layout = GuestLayout(tmp_path / "guest")
    (layout.root / "etc/azure").rmdir()
    env = layout.env
    for operation in ("install", "update", "disable", "uninstall"):
        assert cli.main([operation], env, layout.handler_dir) == 0
    assert (layout.root / "etc/azure").is_dir()
    log = layout.extension_log()
    for operation in ("install", "update", "disable", "uninstall"):
        assert f"]starting {operation}: {protocol.HANDLER_NAME} version " in log


def test_unknown_operation_is_a_usage_error(layout: GuestLayout) -> None:
    assert cli.main(["frobnicate"], layout.env, layout.handler_dir) == 2


def test_missing_handler_environment_exits_0(tmp_path: Path) -> None:
    assert cli.main(["enable"], {}, tmp_path) == 0
