"""The worker in-process against a fake blob endpoint on 127.0.0.1: snapshots, codes,
scripts, the agent's proxy, the freeze window and the status blob."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lab.extension import protocol
from lab.extension.handler.main.vmsnapshot import consistency, operations, worker
from tests.unit.test_extension_fakes import GIB, Failure, FakeStorage, GuestLayout, RecordingProxy


@pytest.fixture
def layout(tmp_path: Path) -> GuestLayout:
    return GuestLayout(tmp_path / "guest")


@pytest.fixture
def storage() -> Iterator[FakeStorage]:
    with FakeStorage() as fake:
        yield fake


def dead_url(path: str) -> str:
    """A URL on a 127.0.0.1 port nobody listens on (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/{path}?sv=x&sig=y"


def backup(layout: GuestLayout, **task: object) -> protocol.SnapshotResult:
    """Enable (without forking) and run the worker it would have started."""
    jobs: list[worker.Job] = []
    assert operations.enable(layout.context(), layout.paths, {}, spawn=jobs.append) == 0
    [job] = jobs
    return worker.run(job)


def test_success_snapshots_every_disk_and_reports_them(
    layout: GuestLayout, storage: FakeStorage
) -> None:
    disks = [storage.disk("vm1-os.vhd", 2 * GIB), storage.disk("vm1-data0.vhd", GIB)]
    status_blob = storage.sas("/devstoreaccount1/status/vm1.status")
    layout.write_task(0, disks, status_blob, task_id="t-ok")
    result = backup(layout)

    assert (result.status, result.code, result.message) == ("success", 1, "Enable Succeeded")
    assert [r.path for r in storage.snapshot_puts()] == [
        "/devstoreaccount1/vhds/vm1-os.vhd",
        "/devstoreaccount1/vhds/vm1-data0.vhd",
    ]
    assert all(r.headers["x-ms-version"] == "2019-02-02" for r in storage.requests())
    reported = layout.result(0)
    assert reported == result
    assert [s.blob_uri for s in reported.snapshots] == [d.split("?")[0] for d in disks]
    assert (
        reported.snapshots[0].snapshot
        == storage.state.snapshots["/devstoreaccount1/vhds/vm1-os.vhd"][0]
    )
    uploaded = storage.blob(status_blob)
    assert uploaded is not None
    assert json.loads(uploaded) == layout.status(0)
    blob_put = [r for r in storage.requests("PUT") if r.path.endswith("vm1.status")][-1]
    assert blob_put.headers["x-ms-blob-type"] == "BlockBlob"
    log = layout.extension_log()
    for expected in (
        "]taskId: t-ok\n",
        f"  Info  index: 0 blobUri: {disks[0].split('?')[0]} \n",
        f"  Info  index: 1 blobUri: {disks[1].split('?')[0]} \n",
        "  Info  T:S freeze result , timedout :False \n",
        "]Enable,success,1,Enable Succeeded\n",
    ):
        assert expected in log


def test_protected_settings_do_not_stay_in_the_settings_file(
    layout: GuestLayout, storage: FakeStorage
) -> None:
    settings = layout.write_task(0, [storage.disk("d.vhd")], storage.sas("/s/st"))
    backup(layout)
    handler = json.loads(settings.read_text())["runtimeSettings"][0]["handlerSettings"]
    assert "protectedSettings" not in handler
    assert "protectedSettingsCertThumbprint" in handler


def test_connection_refused_is_no_network_76(layout: GuestLayout, storage: FakeStorage) -> None:
    status_blob = storage.sas("/devstoreaccount1/status/vm1.status")
    layout.write_task(0, [dead_url("vhds/vm1-os.vhd")], status_blob)
    result = backup(layout)
    assert (result.status, result.code) == ("error", protocol.CODE_NO_NETWORK)
    assert result.message.startswith(
        "T:S Enable failed with FailedRetryableSnapshotFailedNoNetwork error"
    )
    assert "connection refused" in result.message.lower()
    assert json.loads(storage.blob(status_blob) or b"null") == layout.status(0)


def test_an_unreachable_status_blob_is_logged_not_fatal(
    layout: GuestLayout, storage: FakeStorage
) -> None:
    layout.write_task(0, [storage.disk("d.vhd")], dead_url("status/vm1.status"))
    assert backup(layout).code == protocol.CODE_SUCCESS
    assert "cannot write status to the status blob" in layout.extension_log()


def test_storage_refusing_a_snapshot_is_76(layout: GuestLayout, storage: FakeStorage) -> None:
    disk = storage.disk("d.vhd")
    storage.fail(disk, Failure(403, "AuthorizationFailure", method="PUT"))
    layout.write_task(0, [disk, storage.disk("e.vhd")], storage.sas("/s/st"))
    result = backup(layout)
    assert (result.status, result.code) == ("error", protocol.CODE_NO_NETWORK)
    assert "1 of 2 disk(s) failed" in result.message
    assert "storage refused: HTTP 403" in result.message
    assert [s.blob_uri.rsplit("/", 1)[1] for s in result.snapshots] == ["e.vhd"]


def test_a_blob_with_too_many_snapshots_is_85(layout: GuestLayout, storage: FakeStorage) -> None:
    disk = storage.disk("d.vhd")
    limit = "The snapshot count against this blob has been exceeded."
    storage.fail(disk, Failure(409, limit, "SnapshotCountExceeded", method="PUT"))
    layout.write_task(0, [disk], storage.sas("/s/st"))
    result = backup(layout)
    assert (result.status, result.code) == ("error", protocol.CODE_SNAPSHOT_LIMIT)
    assert "StatusCode.FailedSnapshotLimitReached," in result.message


def test_too_late_is_402_and_scales_with_the_lab_clock(
    layout: GuestLayout, storage: FakeStorage
) -> None:
    scale = 240.0  # 140 Azure minutes = 35 s in the lab
    disk, blob = storage.disk("d.vhd"), storage.sas("/s/st")
    layout.write_task(
        0,
        [disk],
        blob,
        task_id="late",
        started=datetime.now(UTC) - timedelta(seconds=36),
        time_scale=scale,
    )
    result = backup(layout)
    assert (result.status, result.code) == ("error", protocol.CODE_TOO_LATE)
    assert result.message == protocol.TOO_LATE_MESSAGE
    assert storage.snapshot_puts() == []

    layout.write_task(
        1,
        [disk],
        blob,
        task_id="in-time",
        started=datetime.now(UTC) - timedelta(seconds=30),
        time_scale=scale,
    )
    assert backup(layout).code == protocol.CODE_SUCCESS


# --- pre/post scripts (VMSnapshotPluginHost.conf + VMSnapshotScriptPluginConfig.json)


def configure_scripts(
    layout: GuestLayout,
    pre: str,
    post: str = "exit 0",
    *,
    continue_on_failure: bool = False,
    timeout: float = 5,
    script_mode: int = 0o700,
) -> Path:
    """Scripts as a customer sets them up; returns the marker the post-script touches."""
    marker = layout.root / "post-ran"
    layout.write_etc(
        "azure/VMSnapshotPluginHost.conf",
        textwrap.dedent(
            """\
            [pre_post]
            timeoutInSeconds: 1800
            numberOfPlugins: 1
            pluginName0: ScriptRunner
            pluginPath0: /etc/azure
            pluginConfigPath0: /etc/azure/VMSnapshotScriptPluginConfig.json
            """
        ),
        0o644,
    )
    config = {
        "pluginName": "ScriptRunner",
        "preScriptLocation": "/etc/azure/pre.sh",
        "postScriptLocation": "/etc/azure/post.sh",
        "preScriptParams": ["", ""],
        "postScriptParams": ["", ""],
        "preScriptNoOfRetries": 0,
        "postScriptNoOfRetries": 0,
        "timeoutInSeconds": timeout,
        "continueBackupOnFailure": continue_on_failure,
        "fsFreezeEnabled": True,
    }
    layout.write_etc("azure/VMSnapshotScriptPluginConfig.json", json.dumps(config), 0o600)
    layout.write_etc("azure/pre.sh", f"#!/bin/sh\n{pre}\n", script_mode)
    layout.write_etc("azure/post.sh", f"#!/bin/sh\ntouch {marker}\n{post}\n", script_mode)
    return marker


def test_clean_scripts_make_an_app_consistent_snapshot(
    layout: GuestLayout, storage: FakeStorage
) -> None:
    marker = configure_scripts(layout, "echo quiesced")
    layout.write_task(0, [storage.disk("d.vhd")], storage.sas("/s/st"))
    result = backup(layout)
    assert (result.status, result.code) == ("success", protocol.CODE_SUCCESS_APP_CONSISTENT)
    assert result.message == "Enable Succeeded with App Consistent Snapshot"
    assert marker.exists()
    assert "pre-script output: quiesced" in layout.extension_log()


def test_a_failing_pre_script_stops_the_backup_with_300(
    layout: GuestLayout, storage: FakeStorage
) -> None:
    marker = configure_scripts(layout, "exit 3")
    layout.write_task(0, [storage.disk("d.vhd")], storage.sas("/s/st"))
    result = backup(layout)
    assert (result.status, result.code) == ("error", protocol.CODE_PRESCRIPT_FAILED)
    assert result.message == (
        "PreScript failed for the plugin ScriptRunner StatusCode.FailedPrepostPreScriptFailed,"
    )
    assert storage.snapshot_puts() == []
    assert marker.exists(), "the post-script runs even when the backup stopped"


def test_a_hanging_pre_script_times_out_with_308(layout: GuestLayout, storage: FakeStorage) -> None:
    configure_scripts(layout, "exec sleep 3", timeout=0.5)
    layout.write_task(0, [storage.disk("d.vhd")], storage.sas("/s/st"))
    started = time.monotonic()
    result = backup(layout)
    assert time.monotonic() - started < 2.5
    assert (result.status, result.code) == ("error", protocol.CODE_PRESCRIPT_TIMEOUT)
    assert "StatusCode.FailedPrepostPreScriptTimeout," in result.message
    assert "is left running" in layout.extension_log()
    assert storage.snapshot_puts() == []


def test_continue_backup_on_failure_gives_a_file_system_consistent_success(
    layout: GuestLayout, storage: FakeStorage
) -> None:
    configure_scripts(layout, "exit 1", continue_on_failure=True)
    layout.write_task(0, [storage.disk("d.vhd")], storage.sas("/s/st"))
    result = backup(layout)
    assert (result.status, result.code) == ("success", protocol.CODE_SUCCESS)
    assert "StatusCode.FailedPrepostPreScriptFailed," in result.message
    assert len(storage.snapshot_puts()) == 1


def test_a_failing_post_script_fails_the_task_after_the_snapshot(
    layout: GuestLayout, storage: FakeStorage
) -> None:
    configure_scripts(layout, "exit 0", "exit 1")
    layout.write_task(0, [storage.disk("d.vhd")], storage.sas("/s/st"))
    result = backup(layout)
    assert (result.status, result.code) == ("error", protocol.CODE_POSTSCRIPT_FAILED)
    assert len(storage.snapshot_puts()) == 1


@pytest.mark.parametrize(
    ("continue_on_failure", "status", "code"),
    [
        (True, "success", protocol.CODE_SUCCESS),
        (False, "error", protocol.CODE_PRESCRIPT_PERMISSION),
    ],
)
def test_scripts_others_can_touch_are_never_run(
    layout: GuestLayout,
    storage: FakeStorage,
    continue_on_failure: bool,
    status: str,
    code: int,
) -> None:
    marker = configure_scripts(
        layout, "exit 0", continue_on_failure=continue_on_failure, script_mode=0o755
    )
    layout.write_task(0, [storage.disk("d.vhd")], storage.sas("/s/st"))
    result = backup(layout)
    assert (result.status, result.code) == (status, code)
    assert not marker.exists()
    if status == "error":
        assert result.message.startswith("Plugin Host Precheck Failed")


def test_without_a_plugin_config_the_backup_is_file_system_consistent(
    layout: GuestLayout, storage: FakeStorage
) -> None:
    layout.write_task(0, [storage.disk("d.vhd")], storage.sas("/s/st"))
    assert backup(layout).code == protocol.CODE_SUCCESS
    assert "FailedPrepostPluginConfigNotFound" in layout.extension_log()


# --- the agent's proxy, and only it


def test_storage_calls_go_through_the_agents_http_proxy(
    layout: GuestLayout, storage: FakeStorage
) -> None:
    with RecordingProxy() as proxy:
        layout.write_etc(
            "waagent.conf",
            f"Extensions.Enabled=y\nHttpProxy.Host=127.0.0.1\nHttpProxy.Port={proxy.port}\n",
            0o644,
        )
        disk, blob = storage.disk("d.vhd"), storage.sas("/s/vm1.status")
        layout.write_task(0, [disk], blob)
        assert backup(layout).code == protocol.CODE_SUCCESS
        targets = [(r.method, r.target) for r in proxy.seen]
    assert ("HEAD", disk) in targets
    assert ("PUT", disk + "&comp=snapshot") in targets
    assert ("PUT", blob) in targets
    assert f"storage calls through HttpProxy http://127.0.0.1:{proxy.port}," in (
        layout.extension_log()
    )


def test_environment_proxies_are_ignored(
    layout: GuestLayout, storage: FakeStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = dead_url("").rsplit("/", 1)[0]
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    layout.write_task(0, [storage.disk("d.vhd")], storage.sas("/s/st"))
    assert backup(layout).code == protocol.CODE_SUCCESS


# --- vmbackup.conf and the consistency step


def test_a_consistency_step_past_the_safe_freeze_wait_is_122(
    layout: GuestLayout, storage: FakeStorage
) -> None:
    conf = "[SnapshotThread]\nSafeFreezeWaitInSeconds = 0\n"
    layout.write_etc("azure/vmbackup.conf", conf, 0o644)
    layout.write_task(0, [storage.disk("d.vhd", 64 * GIB)], storage.sas("/s/st"))
    result = backup(layout)
    assert (result.status, result.code) == ("error", protocol.CODE_FREEZE_TIMEOUT)
    assert "freeze took longer than timeout" in result.message
    assert storage.snapshot_puts() == []


def test_snapshots_past_the_freeze_timeout_are_inconsistent(
    layout: GuestLayout, storage: FakeStorage
) -> None:
    layout.write_etc("azure/vmbackup.conf", "[SnapshotThread]\ntimeout = 0\n", 0o644)
    layout.write_task(0, [storage.disk("d.vhd")], storage.sas("/s/st"))
    result = backup(layout)
    assert (result.status, result.code) == ("error", protocol.CODE_ERROR)
    assert result.message == "Snapshots are inconsistent"
    assert len(storage.snapshot_puts()) == 1  # taken, but after the freeze had thawed


def test_upload_status_and_log_must_be_exactly_true(
    layout: GuestLayout, storage: FakeStorage
) -> None:
    layout.write_etc("azure/vmbackup.conf", "[SnapshotThread]\nUploadStatusAndLog = true\n", 0o644)
    blob = storage.sas("/s/vm1.status")
    layout.write_task(0, [storage.disk("d.vhd")], blob)
    assert backup(layout).code == protocol.CODE_SUCCESS
    assert storage.blob(blob) is None


def test_the_log_is_uploaded_to_the_logs_blob(layout: GuestLayout, storage: FakeStorage) -> None:
    logs = storage.sas("/s/vm1.log")
    layout.write_task(0, [storage.disk("d.vhd")], storage.sas("/s/st"), logs_blob=logs)
    backup(layout)
    uploaded = storage.blob(logs)
    assert uploaded is not None
    assert b"  Info  Enable,success,1,Enable Succeeded \n" in uploaded


def test_consistency_work_is_proportional_to_disk_size() -> None:
    assert consistency.work_for(0) == 0
    assert consistency.work_for(1) == 1
    assert consistency.work_for(GIB) == consistency.MIB_PER_GIB
    assert consistency.work_for(32 * GIB) == 32 * consistency.MIB_PER_GIB
    report = consistency.run([GIB, 2 * GIB], window_seconds=60)
    assert [d.mib for d in report.disks] == [consistency.MIB_PER_GIB, 2 * consistency.MIB_PER_GIB]
    assert report.cpu_seconds > 0


HOG = "while True: pass"
TIMED_WORK = textwrap.dedent(
    """\
    import json, sys
    from lab.extension.handler.main.vmsnapshot import consistency
    report = consistency.run([int(sys.argv[1])], 120)
    print(json.dumps([report.wall_seconds, report.cpu_seconds]))
    """
)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
def test_the_consistency_step_takes_longer_when_the_cpu_is_saturated() -> None:
    cpu = min(os.sched_getaffinity(0))

    def pinned() -> None:
        os.sched_setaffinity(0, {cpu})

    def timed() -> tuple[float, float]:
        done = subprocess.run(
            [sys.executable, "-c", TIMED_WORK, str(4 * GIB)],
            capture_output=True,
            check=True,
            preexec_fn=pinned,
            cwd=Path(__file__).parents[2],
        )
        wall, cpu_used = json.loads(done.stdout)
        return float(wall), float(cpu_used)

    idle_wall, _ = timed()
    hogs = [subprocess.Popen([sys.executable, "-c", HOG], preexec_fn=pinned) for _ in range(3)]
    try:
        time.sleep(0.2)
        busy_wall, busy_cpu = timed()
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert busy_wall > 1.5 * idle_wall
    assert busy_cpu < 0.8 * busy_wall, "the worker got most of a saturated CPU"


# --- every wait on the task's clock (time scale from the settings; absent = Azure's)


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A URL whose server accepts connections (the kernel's backlog) and never answers,
    as storage behind a firewall that lets the handshake through but not the reply."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"http://127.0.0.1:{server.getsockname()[1]}/vhds/vm1-os.vhd?sv=x&sig=y"


def test_storage_calls_time_out_on_the_lab_clock(layout: GuestLayout, black_hole: str) -> None:
    status_blob = black_hole.replace("vhds/vm1-os.vhd", "status/vm1.status")
    layout.write_task(0, [black_hole], status_blob, time_scale=240)
    started = time.monotonic()
    result = backup(layout)
    took = time.monotonic() - started
    assert (result.status, result.code) == ("error", protocol.CODE_NO_NETWORK)
    assert "timed out" in result.message
    # 10 Azure seconds = 1 s here (the floor): three status-blob tries and one disk call
    # before the verdict, three more tries after it; at Azure's clock this is 70 s.
    assert 6.5 < took < 20
    log = layout.extension_log()
    assert "each timing out after 10 s on Azure's clock = 1 s in the lab" in log
    assert f"cannot write status to the status blob {status_blob.split('?')[0]} (try 3 of 3)" in log


def test_a_script_timeout_is_azure_seconds_on_the_lab_clock(
    layout: GuestLayout, storage: FakeStorage
) -> None:
    configure_scripts(layout, "exec sleep 30", timeout=600)  # 10 Azure minutes
    layout.write_task(0, [storage.disk("d.vhd")], storage.sas("/s/st"), time_scale=240)
    started = time.monotonic()
    result = backup(layout)
    assert 2.0 < time.monotonic() - started < 10  # 600 / 240 = 2.5 s
    assert (result.status, result.code) == ("error", protocol.CODE_PRESCRIPT_TIMEOUT)
    log = layout.extension_log()
    assert "timeoutInSeconds 10 min on Azure's clock = 2.5 s in the lab (time scale 240)" in log
    assert "timed out after 2.50 s (600 s on Azure's clock)" in log


def test_the_plugin_host_caps_a_script_in_azure_seconds(
    layout: GuestLayout, storage: FakeStorage
) -> None:
    configure_scripts(layout, "exec sleep 30", timeout=3600)  # capped at 1800 Azure s
    layout.write_task(0, [storage.disk("d.vhd")], storage.sas("/s/st"), time_scale=600)
    started = time.monotonic()
    result = backup(layout)
    assert time.monotonic() - started < 10  # 1800 / 600 = 3 s, not 3600 / 600 = 6 s
    assert result.code == protocol.CODE_PRESCRIPT_TIMEOUT
    assert "timed out after 3.00 s (1800 s on Azure's clock)" in layout.extension_log()


@pytest.mark.parametrize(
    ("scale", "conf", "wait", "hold"),
    [
        (1.0, "", 66.0, "1 min"),  # Azure's own clock
        (4.0, "", 16.5, "15 s"),
        (240.0, "", 10.0, "5 s"),  # the floors
        (240.0, "SafeFreezeWaitInSeconds = 4800\ntimeout = 2400\n", 20.0, "10 s"),
    ],
)
def test_the_freeze_waits_run_on_the_lab_clock(
    layout: GuestLayout,
    storage: FakeStorage,
    monkeypatch: pytest.MonkeyPatch,
    scale: float,
    conf: str,
    wait: float,
    hold: str,
) -> None:
    windows: list[float] = []
    real_run = consistency.run

    def recording(sizes: list[int], window_seconds: float) -> consistency.ConsistencyReport:
        windows.append(window_seconds)
        return real_run(sizes, window_seconds)

    monkeypatch.setattr(consistency, "run", recording)
    layout.write_etc("azure/vmbackup.conf", f"[SnapshotThread]\n{conf}", 0o644)
    layout.write_task(0, [storage.disk("d.vhd")], storage.sas("/s/st"), time_scale=scale)
    assert backup(layout).code == protocol.CODE_SUCCESS
    assert windows == [pytest.approx(wait)]
    log = layout.extension_log()
    assert f"time scale {scale:g}" in log
    assert "SafeFreezeWaitInSeconds" in log
    [held] = [line for line in log.splitlines() if "]T:S freeze, timeout value " in line]
    assert f"= {hold} in the lab" in held.split("; SafeFreezeWaitInSeconds")[0]
    assert f"= {wait:g} s in the lab" in held.split("; SafeFreezeWaitInSeconds")[1]
