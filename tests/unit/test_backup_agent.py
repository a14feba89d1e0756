"""The agent seam over the real fabric state: readiness as the control API shows it,
settings pushed through the goal state, and the handler's report read back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from lab.extension.protocol import (
    HANDLER_NAME,
    LATEST_VERSION,
    DiskSnapshot,
    ProtectedSettings,
    PublicSettings,
    SnapshotResult,
)
from lab.platform.backup.agent import FabricAgentChannel, read_handler_report
from lab.platform.guest_state import CHANNEL_HOSTPLUGIN
from tests.unit.backup_fakes import status_with_result
from tests.unit.fabric_samples import make_fabric, status_bytes, vm_status

NOW = datetime(2026, 11, 27, 21, 56, 23, tzinfo=UTC)
RESULT = SnapshotResult(
    "task-1",
    "success",
    1,
    "snapshots taken",
    (DiskSnapshot("http://s/devstoreaccount1/vhds/vm1-osdisk.vhd", "2026-11-27T21:56:20Z"),),
)


def test_reads_status_code_sequence_and_result() -> None:
    report = read_handler_report(status_with_result(RESULT, 5, NOW))
    assert report is not None
    assert (report.status, report.code, report.sequence_number) == ("success", 1, 5)
    assert report.message == "snapshots taken"
    assert report.terminal
    assert report.result == RESULT
    assert report.result_problem is None


def test_handler_name_matches_case_insensitively() -> None:
    document = status_with_result(RESULT, 5, NOW)
    entry = document["aggregateStatus"]["handlerAggregateStatus"][0]
    entry["handlerName"] = HANDLER_NAME.upper()
    assert read_handler_report(document) is not None


def test_no_handler_or_no_settings_status_yet() -> None:
    assert read_handler_report(vm_status()) is None  # only another handler
    assert read_handler_report(vm_status(with_handler=False)) is None
    document = status_with_result(RESULT, 5, NOW)
    del document["aggregateStatus"]["handlerAggregateStatus"][0]["runtimeSettingsStatus"]
    report = read_handler_report(document)
    assert report is not None
    assert report.status is None and not report.terminal and report.sequence_number is None


def test_error_without_substatus_is_terminal_with_a_problem() -> None:
    """What the agent itself reports when enable fails (e.g. code 1009)."""
    document = status_with_result(RESULT, 2, NOW)
    status = document["aggregateStatus"]["handlerAggregateStatus"][0]["runtimeSettingsStatus"][
        "settingsStatus"
    ]["status"]
    status.update(status="error", code=1009, substatus=None)
    status["formattedMessage"]["message"] = "Non-zero exit code: 1"
    report = read_handler_report(document)
    assert report is not None and report.terminal
    assert (report.status, report.code, report.message) == ("error", 1009, "Non-zero exit code: 1")
    assert report.result is None and report.result_problem


def test_transitioning_is_not_terminal_and_has_no_result() -> None:
    transitioning = SnapshotResult("task-1", "transitioning", 0, "working")
    report = read_handler_report(status_with_result(transitioning, 3, NOW))
    assert report is not None and not report.terminal and report.result is None


def test_fabric_channel_readiness_follows_reports_and_the_precheck_window() -> None:
    fabric, clock = make_fabric(stale_after=20.0)
    window = [20.0]
    channel = FabricAgentChannel(fabric, precheck_stale_after=lambda: window[0])
    assert not channel.agent_ready("vm1")  # never reported
    guest = fabric.guest("vm1")
    assert guest is not None
    guest.record_status(status_bytes(), CHANNEL_HOSTPLUGIN)
    assert channel.agent_ready("vm1")
    clock.advance(10)
    assert channel.agent_ready("vm1")
    window[0] = 5.0  # a stricter pre-check window than the instance view's
    assert not channel.agent_ready("vm1")
    window[0] = 20.0
    clock.advance(15)
    assert not channel.agent_ready("vm1")  # stale: the view says Not Ready
    guest.record_status(status_bytes(agent_status="NotReady"), CHANNEL_HOSTPLUGIN)
    assert not channel.agent_ready("vm1")


def test_fabric_channel_pushes_settings_through_the_goal_state() -> None:
    fabric, _ = make_fabric()
    channel = FabricAgentChannel(fabric)
    guest = fabric.guest("vm1")
    assert guest is not None
    assert channel.current_seq_no("vm1") is None
    public = PublicSettings("task-1", NOW, time_scale=240.0).to_json()
    protected = ProtectedSettings(("http://s/vhds/d?sig=x",), "http://s/vmstatus/x").to_json()
    before = int(guest.incarnation)
    incarnation = channel.push_settings("vm1", 3, public, protected)
    assert int(incarnation) == before + 1 == int(guest.incarnation)
    (handler,) = guest.handlers()
    assert (handler.name, handler.version, handler.state, handler.seq_no) == (
        HANDLER_NAME,
        LATEST_VERSION,
        "enabled",
        3,
    )
    assert handler.manifest_url == fabric.artifacts.manifest_url(HANDLER_NAME)
    assert dict(handler.public_settings) == public
    assert handler.protected_settings == protected  # plain: documents.py encrypts it
    assert channel.current_seq_no("vm1") == 3
    assert fabric.guest("vm2").handlers() == ()  # type: ignore[union-attr]


def test_fabric_channel_reads_the_latest_report() -> None:
    fabric, _ = make_fabric()
    channel = FabricAgentChannel(fabric)
    assert channel.handler_report("vm1") is None
    guest = fabric.guest("vm1")
    assert guest is not None
    raw = json.dumps(status_with_result(RESULT, 4, NOW)).encode()
    guest.record_status(raw, CHANNEL_HOSTPLUGIN)
    report = channel.handler_report("vm1")
    assert report is not None and report.sequence_number == 4 and report.result == RESULT


def test_fabric_channel_asks_for_the_newest_version_the_platform_offers() -> None:
    """As CRP does for an extension that auto-upgrades minor versions: a newer version
    published later is what the next backup asks the agent for, broken or not."""
    fabric, _ = make_fabric()
    fabric.artifacts.publish_extension(HANDLER_NAME, "1.0.92.0", b"PK-good")
    channel = FabricAgentChannel(fabric)
    public = PublicSettings("task-1", NOW, time_scale=240.0).to_json()
    protected = ProtectedSettings(("http://s/vhds/d?sig=x",), "http://s/vmstatus/x").to_json()
    channel.push_settings("vm1", 1, public, protected)
    assert fabric.guest("vm1").handlers()[0].version == "1.0.92.0"  # type: ignore[union-attr]
    fabric.artifacts.publish_broken(HANDLER_NAME, "1.0.93.0", "corrupt")
    channel.push_settings("vm1", 2, public, protected)
    assert fabric.guest("vm1").handlers()[0].version == "1.0.93.0"  # type: ignore[union-attr]
    fabric.artifacts.withdraw(HANDLER_NAME, "1.0.93.0")
    channel.push_settings("vm1", 3, public, protected)
    assert fabric.guest("vm1").handlers()[0].version == "1.0.92.0"  # type: ignore[union-attr]


def test_fabric_channel_reads_the_platforms_power_state() -> None:
    fabric, _ = make_fabric()
    channel = FabricAgentChannel(fabric)
    assert channel.power_state("vm1") == "running"
    fabric.power.set("vm1", "stopped")
    assert channel.power_state("vm1") == "stopped"
    assert channel.power_state("vm2") == "running"
