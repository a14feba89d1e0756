"""The VMSnapshot handler on disk: files, the requested package, the newest status."""

from __future__ import annotations

from checks.fakes import (
    EXTENSIONS_CONFIG,
    HANDLER_DIR,
    FakeHost,
    fake_context,
    healthy_host,
    plugin_xml,
    status_json,
)
from checks.in_guest.handler import extension_package, extension_status, handler_files

FACTS = fake_context().facts
OLD_DIR = "/var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.91.0"
NEW_DIR = "/var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.93.0"


def not_installed() -> FakeHost:
    host = healthy_host()
    host.on("ls -1d /var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-*/", "", 2)
    return host


def test_intact_handler_passes() -> None:
    result = handler_files(healthy_host(), FACTS)
    assert result.passed and "HandlerState Enabled" in result.detail


def test_no_handler_yet_passes() -> None:
    result = handler_files(not_installed(), FACTS)
    assert result.passed and "not installed" in result.detail


def test_script_with_syntax_error_fails() -> None:
    host = healthy_host().on(
        "sh -n", f"{HANDLER_DIR}/main/handle.sh: 3: Syntax error: end of file unexpected\n", rc=2
    )
    result = handler_files(host, FACTS)
    assert not result.passed and "fails sh -n" in result.detail


def test_script_not_executable_and_without_shebang_fails() -> None:
    host = healthy_host().on("stat -c '%A'", "-rw-r--r--\ngarbage\n")
    result = handler_files(host, FACTS)
    assert not result.passed
    assert "not executable" in result.detail and "no #! line" in result.detail


def test_script_that_differs_from_the_package_fails() -> None:
    host = healthy_host().on("zipfile.ZipFile", "differs main/handle.sh\n")
    result = handler_files(host, FACTS)
    assert not result.passed and "differs from the package" in result.detail
    assert "main/handle.sh (differs)" in result.detail


def test_a_corrupt_file_deep_in_the_handler_package_fails() -> None:
    host = healthy_host().on("zipfile.ZipFile", "differs main/vmsnapshot/worker.py\n")
    result = handler_files(host, FACTS)
    assert not result.passed and "main/vmsnapshot/worker.py (differs)" in result.detail


def test_missing_script_fails() -> None:
    host = healthy_host().on("stat -c '%A'", "", rc=1)
    result = handler_files(host, FACTS)
    assert not result.passed and "main/handle.sh missing" in result.detail


def test_corrupt_manifest_fails() -> None:
    host = healthy_host().file(f"{HANDLER_DIR}/HandlerManifest.json", "[{not json")
    result = handler_files(host, FACTS)
    assert not result.passed and "not a valid handler manifest" in result.detail


def test_manifest_missing_commands_fails() -> None:
    host = healthy_host().file(
        f"{HANDLER_DIR}/HandlerManifest.json",
        '[{"handlerManifest": {"enableCommand": "main/handle.sh enable"}}]',
    )
    result = handler_files(host, FACTS)
    assert not result.passed and "lacks installCommand" in result.detail


def test_env_bash_shebang_is_checked_with_bash() -> None:
    host = healthy_host().on("stat -c '%A'", "-rwx------\n#!/usr/bin/env bash\n")
    handler_files(host, FACTS)
    assert host.ran("bash -n")


def test_requested_version_installed_passes() -> None:
    assert extension_package(healthy_host(), FACTS).passed


def update_offered() -> FakeHost:
    host = healthy_host()
    host.file(EXTENSIONS_CONFIG, plugin_xml("1.0.93.0"))
    return host


def test_update_not_tried_yet_passes() -> None:
    result = extension_package(update_offered(), FACTS)
    assert result.passed and "has not tried" in result.detail


def test_update_that_could_not_be_fetched_fails() -> None:
    host = update_offered().on(
        "tail -n 5000 /var/log/waagent.log",
        "2026-11-28T00:40:01Z INFO ExtHandler [Microsoft.Azure.RecoveryServices.VMSnapshotLinux"
        "-1.0.93.0] Error downloading extension package: [HttpError] HTTP Failed, status 404\n",
    )
    result = extension_package(host, FACTS)
    assert not result.passed
    assert "1.0.93.0" in result.detail and "Error downloading" in result.detail


def test_failed_unzip_counts() -> None:
    host = update_offered().on(
        "tail -n 5000 /var/log/waagent.log",
        "2026-11-28T00:40:01Z INFO ExtHandler ExtHandler Error while unzipping extension "
        "package: File is not a zip file\n",
    )
    assert not extension_package(host, FACTS).passed


def test_failed_upgrade_state_fails() -> None:
    host = healthy_host().file(f"{HANDLER_DIR}/config/HandlerState", "FailedUpgrade")
    result = extension_package(host, FACTS)
    assert not result.passed and "FailedUpgrade" in result.detail


def test_uninstall_requested_passes() -> None:
    host = healthy_host().file(EXTENSIONS_CONFIG, plugin_xml(state="uninstall"))
    assert extension_package(host, FACTS).passed


def test_handler_files_look_at_the_installed_version_when_the_update_is_missing() -> None:
    host = update_offered()
    host.on(
        "ls -1d /var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-*/",
        f"{HANDLER_DIR}/\n{OLD_DIR}/\n",
    )
    result = handler_files(host, FACTS)
    assert result.passed and HANDLER_DIR in result.detail


def test_success_status_passes() -> None:
    result = extension_status(healthy_host(), FACTS)
    assert result.passed and "success, code 1" in result.detail


def test_error_status_fails() -> None:
    host = healthy_host().file(
        f"{HANDLER_DIR}/status/0.status",
        status_json("error", 76, "FailedRetryableSnapshotFailedNoNetwork"),
    )
    result = extension_status(host, FACTS)
    assert not result.passed and "code 76" in result.detail


def test_transitioning_is_fine_while_young_and_fails_when_old() -> None:
    host = healthy_host().file(
        f"{HANDLER_DIR}/status/0.status", status_json("transitioning", 4, "Transitioning")
    )
    host.on("echo $(( $(date +%s)", "5\n")
    assert extension_status(host, FACTS).passed
    host.on("echo $(( $(date +%s)", "90\n")
    result = extension_status(host, FACTS)
    assert not result.passed and "still transitioning 90 s" in result.detail


def test_no_status_for_the_newest_settings_fails_once_late() -> None:
    host = healthy_host().on(
        f"ls -1 {HANDLER_DIR}/config/*.settings",
        f"{HANDLER_DIR}/config/0.settings\n{HANDLER_DIR}/config/1.settings\n",
    )
    result = extension_status(host, FACTS)
    assert not result.passed and "sequence 1: no status file 40 s" in result.detail


def test_agent_handler_status_not_ready_fails_at_once() -> None:
    host = healthy_host().on(
        f"ls -1 {HANDLER_DIR}/config/*.settings",
        f"{HANDLER_DIR}/config/0.settings\n{HANDLER_DIR}/config/1.settings\n",
    )
    host.on("echo $(( $(date +%s)", "3\n")
    host.file(
        f"{HANDLER_DIR}/config/HandlerStatus",
        (
            '{"status": "NotReady", "code": 1009,'
            ' "message": "Non-zero exit code: 2,\\n main/handle.sh enable"}'
        ),
    )
    result = extension_status(host, FACTS)
    assert not result.passed
    assert "NotReady (code 1009: Non-zero exit code: 2, main/handle.sh enable)" in result.detail
