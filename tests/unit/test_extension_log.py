"""The extension's log lines in the real VMSnapshotLinux's shapes: the file's prefix and
no level, the freeze window's block, the logs blob's levels, and a whole backup's log."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.extension import protocol
from lab.extension.handler.main.vmsnapshot import operations, status, worker
from lab.extension.handler.main.vmsnapshot.log import (
    FREEZE_END_BANNER,
    FREEZE_START_BANNER,
    ExtensionLog,
)
from tests.unit.test_extension_fakes import GIB, FakeStorage, GuestLayout

PREFIX = f"[{protocol.HANDLER_NAME}-1.0]"
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}"
FILE_LINE = re.compile(rf"{STAMP} {re.escape(PREFIX)}(?P<message>.*)")
FROZEN_LINE = re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6}  (Info|Warning|Error)  .* ")


@pytest.fixture
def layout(tmp_path: Path) -> GuestLayout:
    return GuestLayout(tmp_path / "guest")


@pytest.fixture
def storage() -> Iterator[FakeStorage]:
    with FakeStorage() as fake:
        yield fake


def file_lines(layout: GuestLayout) -> list[str]:
    return layout.extension_log().splitlines()


def test_a_file_line_is_the_time_the_prefix_and_the_message_with_no_level(
    layout: GuestLayout,
) -> None:
    log = layout.context().log()
    log.info("starting enable")
    log.error("T:S Enable failed with FailedRetryableSnapshotFailedNoNetwork error")
    first, second = file_lines(layout)
    assert (match := FILE_LINE.fullmatch(first)) and match["message"] == "starting enable"
    assert (match := FILE_LINE.fullmatch(second))
    assert match["message"].startswith("T:S Enable failed")  # no "Error" before it
    # The logs blob keeps the levels: "<time>  <Level>  <message> ".
    blob = log.text().splitlines()
    assert re.fullmatch(rf"{STAMP}  Info  starting enable ", blob[0])
    assert re.fullmatch(rf"{STAMP}  Error  T:S Enable failed with .* error ", blob[1])


def test_the_prefix_is_handler_environment_json_s_name_and_version(layout: GuestLayout) -> None:
    environment = layout.handler_dir / "HandlerEnvironment.json"
    document = json.loads(environment.read_text())
    document[0]["version"] = 2.5
    environment.write_text(json.dumps(document))
    layout.context().log().info("cwd is x")
    assert layout.extension_log().split(" ", 2)[2] == f"[{protocol.HANDLER_NAME}-2.5]cwd is x\n"


def test_the_freeze_window_is_written_as_one_block_when_it_ends(layout: GuestLayout) -> None:
    log = layout.context().log()
    log.info("T:S freeze, timeout value 60")
    with log.frozen():
        log.info("****** 2. Freeze Started")
        log.warning("index: 0 blobUri: http://storage/vhds/os.vhd")
        assert len(file_lines(layout)) == 1, "nothing reaches the file during the freeze"
    log.info("T:S thaw result ")
    lines = file_lines(layout)
    assert FILE_LINE.fullmatch(lines[1])
    assert lines[1].endswith(f"]{FREEZE_START_BANNER}")
    assert FROZEN_LINE.fullmatch(lines[2]) and "  Info  ****** 2. Freeze Started " in lines[2]
    assert FROZEN_LINE.fullmatch(lines[3]) and "  Warning  index: 0 blobUri: http" in lines[3]
    assert lines[4] == FREEZE_END_BANNER
    assert FILE_LINE.fullmatch(lines[5]) and lines[5].endswith("]T:S thaw result ")
    assert len(log.text().splitlines()) == 4, "the blob copy has the lines, not the banners"


def test_a_freeze_that_ends_in_an_exception_still_writes_its_block(layout: GuestLayout) -> None:
    log = layout.context().log()
    with pytest.raises(RuntimeError), log.frozen():
        with log.frozen():  # nested: one block, written by the outer one
            log.error("freeze timed-out")
        raise RuntimeError("boom")
    lines = file_lines(layout)
    assert [line.count("Logs during Freeze") for line in lines] == [1, 0, 1]
    assert "  Error  freeze timed-out " in lines[1]


def test_logging_never_fails(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    log = ExtensionLog(blocked / "extension.log", "[x-1.0]")  # a file where a folder should be
    log.info("still fine")
    with log.frozen():
        log.info("frozen")
    assert "still fine" in log.text()


def test_a_status_report_line_is_operation_status_code_message() -> None:
    result = protocol.SnapshotResult("t", "error", 76, "T:S Enable failed")
    assert status.report_line(result) == "Enable,error,76,T:S Enable failed"


def backup(layout: GuestLayout) -> protocol.SnapshotResult:
    jobs: list[worker.Job] = []
    operations.enable(layout.context(), layout.paths, {"ConfigSequenceNumber": "0"}, jobs.append)
    return worker.run(jobs[0])


def test_a_whole_backup_reads_like_the_real_extension_s_log(
    layout: GuestLayout, storage: FakeStorage
) -> None:
    disk = storage.disk("vm1-osdisk.vhd", 2 * GIB)
    layout.write_task(0, [disk], storage.sas("/devstoreaccount1/status/vm1.status"), task_id="t1")
    assert backup(layout).code == protocol.CODE_SUCCESS
    lines = file_lines(layout)
    start, end = (
        lines.index(next(x for x in lines if FREEZE_START_BANNER in x)),
        lines.index(FREEZE_END_BANNER),
    )
    outside = lines[: start + 1] + lines[end + 1 :]
    assert all(FILE_LINE.fullmatch(line) for line in outside), "every line has the prefix"
    assert all(FROZEN_LINE.fullmatch(line) for line in lines[start + 1 : end])
    messages = [m["message"] for line in outside if (m := FILE_LINE.fullmatch(line))]
    frozen = [line.split("  ", 2)[2].rstrip() for line in lines[start + 1 : end]]
    blob = disk.split("?")[0]
    in_order = [
        (messages, f"starting enable: {protocol.HANDLER_NAME} version "),
        (messages, "sequence number from environment variable is 0"),
        (messages, "taskId: t1"),
        (messages, "Enable,transitioning,4,Transitioning state in extension"),
        (messages, "starting daemon for freezing the file system: pid "),
        (messages, f"GetBlobProperties: index: 0 blobUri: {blob} contentLength: {2 * GIB}"),
        (messages, "T:S freeze, timeout value 60 (1 min on Azure's clock = "),
        (frozen, "****** 2. Freeze Started: "),
        (frozen, "****** 3. Freeze Completed: hashed 64 MiB in "),
        (frozen, "T:S freeze result , timedout :False"),
        (frozen, "****** 5. Snaphotting (Guest-seq) Started"),
        (frozen, f"index: 0 blobUri: {blob}"),
        (frozen, "snapshot resp status: 201, x-ms-snapshot: "),
        (frozen, "T:S snapshotall ends..."),
        (messages, "T:S thaw result"),
        (messages, "Enable,success,1,Enable Succeeded"),
        (messages, "file status report message:"),
        (messages, "status blob written succesfully"),
        (messages, "the logs blob uri is not there, so do not upload log."),
    ]
    positions = {id(messages): 0, id(frozen): 0}
    for where, expected in in_order:
        found = next(
            (
                i
                for i, m in enumerate(where)
                if i >= positions[id(where)] and m.startswith(expected)
            ),
            None,
        )
        assert found is not None, f"{expected!r} missing or out of order"
        positions[id(where)] = found


def test_a_freeze_past_safe_freeze_wait_logs_the_timeout_and_its_code(
    layout: GuestLayout, storage: FakeStorage
) -> None:
    layout.write_etc("azure/vmbackup.conf", "[SnapshotThread]\nSafeFreezeWaitInSeconds = 0\n")
    layout.write_task(0, [storage.disk("d.vhd", 64 * GIB)], storage.sas("/s/st"))
    assert backup(layout).code == protocol.CODE_FREEZE_TIMEOUT
    log = layout.extension_log()
    assert "  Error  freeze timed-out: consistency step still running after " in log
    assert "  Info  T:S freeze result freeze timed-out, timedout :True " in log
    assert (
        "]Enable,error,122,T:S ###### Enable failed with error: freeze took longer than timeout "
        "StatusCode.FailedRetryableFsFreezeTimeout, " in log
    )
    assert log.index(FREEZE_END_BANNER) < log.index("]Enable,error,122,")
