"""The handler zip the fabric serves, and the handler run from it the way the agent runs
it: ``main/handle.sh <operation>`` in the handler directory, as separate processes."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from lab.extension import package, protocol
from tests.unit.test_extension_fakes import FakeStorage, GuestLayout

COMMANDS = (
    "installCommand",
    "uninstallCommand",
    "updateCommand",
    "enableCommand",
    "disableCommand",
)


def entries(blob: bytes) -> dict[str, zipfile.ZipInfo]:
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return {info.filename: info for info in archive.infolist()}


def member(blob: bytes, name: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return archive.read(name)


@pytest.mark.parametrize("version", protocol.HANDLER_VERSIONS)
def test_the_zip_is_deterministic_and_carries_the_version(version: str) -> None:
    blob = package.build_handler_zip(version)
    assert blob == package.build_handler_zip(version)
    infos = entries(blob)
    assert list(infos) == sorted(infos)
    assert {info.date_time for info in infos.values()} == {(1980, 1, 1, 0, 0, 0)}
    [manifest] = json.loads(member(blob, "HandlerManifest.json"))
    assert manifest["name"] == protocol.HANDLER_NAME
    assert manifest["version"] == version
    handler = manifest["handlerManifest"]
    assert {k: handler[k] for k in COMMANDS} == {
        k: f"main/handle.sh {k.removesuffix('Command')}" for k in COMMANDS
    }
    assert handler["reportHeartbeat"] is False
    assert handler["rebootAfterInstall"] is False
    assert "updateMode" not in handler  # as the real one: the agent's default, UpdateWithInstall


def test_scripts_are_executable_and_nothing_built_is_shipped() -> None:
    infos = entries(package.build_handler_zip(protocol.LATEST_VERSION))
    modes = {name: (info.external_attr >> 16) & 0o777 for name, info in infos.items()}
    assert modes["main/handle.sh"] == 0o755
    assert modes["main/handle.py"] == 0o755
    assert modes["main/vmsnapshot/worker.py"] == 0o644
    assert not [n for n in infos if "__pycache__" in n or n.endswith(".pyc")]


def test_the_contract_module_replaces_its_stand_in() -> None:
    blob = package.build_handler_zip(protocol.LATEST_VERSION)
    shipped = member(blob, "main/vmsnapshot/protocol.py")
    assert shipped == Path(protocol.__file__).read_bytes()


def test_unknown_versions_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown handler version '9\.9'"):
        package.build_handler_zip("9.9")


def test_write_handler_zips_writes_every_version(tmp_path: Path) -> None:
    written = package.write_handler_zips(tmp_path / "artifacts")
    assert [p.name for p in written] == [
        f"{protocol.HANDLER_NAME}__{v}.zip" for v in protocol.HANDLER_VERSIONS
    ]
    for path, version in zip(written, protocol.HANDLER_VERSIONS, strict=True):
        assert path.read_bytes() == package.build_handler_zip(version)


# --- end to end: the real shell wrapper, enable, and the detached worker


def wait_for(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="the guest's python3")
def test_enable_returns_at_once_and_the_detached_worker_finishes(tmp_path: Path) -> None:
    with FakeStorage() as storage:
        layout = GuestLayout(tmp_path / "guest")  # the handler unzipped as the agent does
        config = {
            "preScriptLocation": "/etc/azure/pre.sh",
            "postScriptLocation": "/etc/azure/post.sh",
            "timeoutInSeconds": 10,
            "continueBackupOnFailure": False,
        }
        layout.write_etc("azure/VMSnapshotScriptPluginConfig.json", json.dumps(config), 0o600)
        layout.write_etc("azure/pre.sh", "sleep 1\necho pre done\n", 0o700)
        layout.write_etc("azure/post.sh", "echo post done\n", 0o700)
        status_blob = storage.sas("/devstoreaccount1/status/vm1.status")
        layout.write_task(2, [storage.disk("vm1-os.vhd")], status_blob, task_id="e2e")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ConfigSequenceNumber": "2",
            "AZURE_GUEST_AGENT_EXTENSION_VERSION": protocol.LATEST_VERSION,
            **layout.env,
        }

        def run(operation: str) -> tuple[subprocess.CompletedProcess[bytes], float]:
            started = time.monotonic()
            done = subprocess.run(
                ["main/handle.sh", operation],
                cwd=layout.handler_dir,
                env=env,
                capture_output=True,  # like the agent: returns only once stdout/err close
                timeout=30,
                check=False,
            )
            return done, time.monotonic() - started

        installed, _ = run("install")
        assert installed.returncode == 0, installed.stderr
        enabled, took = run("enable")
        assert enabled.returncode == 0, enabled.stderr
        assert took < 1.0, "enable must not wait for the worker (whose pre-script takes 1 s)"
        assert layout.result(2).status == "transitioning"

        wait_for(lambda: layout.result(2).terminal, 15)
        result = layout.result(2)
        assert (result.status, result.code) == ("success", protocol.CODE_SUCCESS_APP_CONSISTENT)
        assert [s.blob_uri for s in result.snapshots] == [
            f"{storage.base}/devstoreaccount1/vhds/vm1-os.vhd"
        ]
        wait_for(lambda: b'"success"' in (storage.blob(status_blob) or b""), 5)

    shell_log = (layout.log_folder / "shell.log").read_text().splitlines()
    # The real handle.sh's shape: `date -u`, "- ", the message.
    assert all(
        re.fullmatch(r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d UTC \d{4}- .+", line)
        for line in shell_log
    )
    messages = [line.split("- ", 1)[1] for line in shell_log]
    assert "The command is install" in messages
    assert "ConfigSequenceNumber from environment variable seqNo:2" in messages
    assert any(m.startswith("python3 path exists") for m in messages)
    assert messages[-1] == "0 returned from handle.py"
    log = layout.extension_log()
    assert "pre-script output: pre done" in log
    assert "]Enable,success,0,Enable Succeeded with App Consistent Snapshot\n" in log
    enable_pid = re.search(r"enable pid (\d+): starting the daemon", log)
    worker_pid = re.search(r"starting daemon for freezing the file system: pid (\d+)", log)
    assert enable_pid and worker_pid and enable_pid[1] != worker_pid[1]
