"""Per-guest platform state: incarnations, reports, and the derived instance view."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from lab.platform.documents import HandlerSpec
from lab.platform.guest_state import CHANNEL_DIRECT, CHANNEL_HOSTPLUGIN, Fabric
from lab.platform.identity import GuestIdentity
from lab.platform.instance_view import AGENT_NOT_READY, AGENT_READY
from lab.platform.page_blob import PageBlob, parse_range
from lab.platform.status_report import StatusFormatError, parse_vm_status
from lab.platform.timescale import AGENT_STATUS_STALE_AFTER
from tests.unit.fabric_samples import VM1_IP, make_fabric, make_roster, status_bytes, vm_status

HELLO = HandlerSpec(name="Lab.Test.HelloExt", version="1.0.0", manifest_url="http://f/m.xml")


def test_incarnation_starts_at_1_and_bumps() -> None:
    fabric, _ = make_fabric()
    guest = fabric.guest("vm1")
    assert guest is not None
    assert guest.incarnation == "1"
    assert guest.bump() == "2"
    assert guest.goal_state().incarnation == "2"


def test_bump_is_thread_safe() -> None:
    fabric, _ = make_fabric()
    guest = fabric.guest("vm1")
    assert guest is not None
    threads = [
        threading.Thread(target=lambda: [guest.bump() for _ in range(100)]) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert guest.incarnation == "801"


def test_goal_state_metadata_is_stable_per_incarnation() -> None:
    fabric, clock = make_fabric()
    guest = fabric.guest("vm1")
    assert guest is not None
    first = guest.goal_state().metadata
    clock.advance(5)
    assert guest.goal_state().metadata == first
    guest.bump()
    second = guest.goal_state().metadata
    assert second.activity_id != first.activity_id
    assert second.created_on > first.created_on
    assert second.in_svd_seq_no == "2"


def test_identity_is_stable_across_fabric_restarts() -> None:
    roster = make_roster()
    assert GuestIdentity.derive("unit", roster.guests[0]) == GuestIdentity.derive(
        "unit", roster.guests[0]
    )
    ident = GuestIdentity.derive("unit", roster.guests[0])
    assert ident != GuestIdentity.derive("other-lab", roster.guests[0])
    assert ident.config_name.split(".")[0] == ident.deployment_id


def test_set_handler_bumps_and_replaces_case_insensitively() -> None:
    fabric, _ = make_fabric()
    guest = fabric.guest("vm1")
    assert guest is not None
    assert guest.set_handler(HELLO) == "2"
    newer = HandlerSpec(name="lab.test.helloext", version="1.0.0", manifest_url="u", seq_no=1)
    assert guest.set_handler(newer) == "3"
    assert guest.handlers() == (newer,)
    assert guest.remove_handler("LAB.TEST.HELLOEXT", bump=False) == "3"
    assert guest.handlers() == ()


def test_view_without_any_report_is_not_ready() -> None:
    fabric, _ = make_fabric()
    guest = fabric.guest("vm1")
    assert guest is not None
    view = guest.view().to_json()
    assert view["agent"]["status"] == AGENT_NOT_READY
    assert view["agent"]["version"] is None
    assert view["agent"]["last_report"] is None
    assert view["agent"]["report_age_seconds"] is None
    assert view["os"] is None
    assert view["extensions"] == []
    assert view["health"] == {"state": None, "last_report": None}


def test_fresh_ready_report_is_ready_and_goes_stale() -> None:
    fabric, clock = make_fabric(stale_after=20.0)
    guest = fabric.guest("vm1")
    assert guest is not None
    guest.record_status(status_bytes(), CHANNEL_HOSTPLUGIN)
    view = guest.view().to_json()
    assert view["agent"] == {
        "version": "2.7.3.0",
        "status": AGENT_READY,
        "message": "Guest Agent is running",
        "last_report": "2026-11-27T21:56:23Z",
        "report_age_seconds": 0.0,
    }
    assert view["os"] == {"computer_name": "vm1", "name": "debian", "version": "12"}
    assert view["extensions"] == [
        {
            "name": "Lab.Test.HelloExt",
            "version": "1.0.0",
            "handler_status": "Ready",
            "status": "success",
            "code": 0,
            "message": "enabled by lab",
            "operation": "Enable",
            "sequence_number": 0,
        }
    ]
    clock.advance(19.5)
    assert guest.view().agent_status == AGENT_READY
    clock.advance(0.5)
    stale = guest.view()
    assert stale.agent_status == AGENT_NOT_READY
    assert "not updated" in stale.agent_message
    assert stale.agent_version == "2.7.3.0"  # the last known version stays visible
    assert stale.report_age_seconds == pytest.approx(20.0)
    # A new upload makes it Ready again.
    guest.record_status(status_bytes(), CHANNEL_DIRECT)
    assert guest.view().agent_status == AGENT_READY


def test_default_staleness_follows_the_time_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPLAB_TIME_SCALE", "60")
    from tests.unit.fabric_samples import FakeClock

    clock = FakeClock()
    fabric = Fabric(make_roster(), clock=clock)
    guest = fabric.guest("vm1")
    assert guest is not None
    guest.record_status(status_bytes(), CHANNEL_HOSTPLUGIN)
    limit = AGENT_STATUS_STALE_AFTER.lab_seconds()
    clock.advance(limit - 0.1)
    assert guest.view().agent_status == AGENT_READY
    clock.advance(0.1)
    assert guest.view().agent_status == AGENT_NOT_READY


def test_agent_reporting_not_ready_is_not_ready() -> None:
    fabric, _ = make_fabric()
    guest = fabric.guest("vm1")
    assert guest is not None
    guest.record_status(status_bytes(agent_status="NotReady"), CHANNEL_HOSTPLUGIN)
    view = guest.view()
    assert view.agent_status == AGENT_NOT_READY
    assert view.agent_message == "Guest Agent is running"


def test_view_tolerates_sparse_status() -> None:
    fabric, _ = make_fabric()
    guest = fabric.guest("vm1")
    assert guest is not None
    status = vm_status()
    handler = status["aggregateStatus"]["handlerAggregateStatus"][0]
    del handler["runtimeSettingsStatus"]
    status["aggregateStatus"]["handlerAggregateStatus"].append({"no": "name"})
    del status["guestOSInfo"]
    guest.record_status(json.dumps(status).encode(), CHANNEL_HOSTPLUGIN)
    view = guest.view()
    assert view.os is None
    assert len(view.extensions) == 1
    ext = view.extensions[0]
    assert ext.handler_status == "Ready"
    assert ext.status is None and ext.sequence_number is None
    assert ext.message == "Plugin enabled"
    guest.record_status(b'{"version": "1.1"}', CHANNEL_HOSTPLUGIN)
    assert guest.view().agent_status == AGENT_NOT_READY


def test_health_report_is_kept() -> None:
    fabric, _ = make_fabric()
    guest = fabric.guest("vm1")
    assert guest is not None
    guest.record_health("Ready", incarnation="1")
    view = guest.view().to_json()
    assert view["health"] == {"state": "Ready", "last_report": "2026-11-27T21:56:23Z"}


def test_parse_vm_status_strips_padding_and_rejects_non_objects() -> None:
    assert parse_vm_status(b'{"a": 1}' + b" " * 40 + b"\x00" * 30) == {"a": 1}
    for bad in (b"", b"not json", b"[1, 2]", b"\xff\xfe", b'"text"'):
        with pytest.raises(StatusFormatError):
            parse_vm_status(bad)


def test_page_blob_reassembly() -> None:
    fabric, _ = make_fabric()
    guest = fabric.guest("vm1")
    assert guest is not None
    data = status_bytes()
    size = (len(data) + 511) // 512 * 512
    padded = data.ljust(size, b" ")
    guest.start_page_blob(CHANNEL_DIRECT, size)
    assert guest.write_page(CHANNEL_DIRECT, 0, padded[:512]) is None
    report = guest.write_page(CHANNEL_DIRECT, 512, padded[512:])
    assert report is not None
    assert report.parsed == vm_status()
    with pytest.raises(StatusFormatError):
        guest.write_page(CHANNEL_DIRECT, 0, b"x")  # blob consumed; next cycle recreates


def test_page_blob_bounds() -> None:
    with pytest.raises(StatusFormatError):
        PageBlob(-1)
    with pytest.raises(StatusFormatError):
        PageBlob(10**12)
    blob = PageBlob(512)
    with pytest.raises(StatusFormatError):
        blob.write(500, b"x" * 20)


def test_parse_range() -> None:
    assert parse_range("bytes=0-511") == (0, 512)
    for bad in (None, "", "bytes=5-1", "bits=0-1", "bytes=a-b", "bytes=-1-3"):
        with pytest.raises(StatusFormatError):
            parse_range(bad)


def test_fabric_lookup_by_ip_and_name() -> None:
    fabric, _ = make_fabric()
    guest = fabric.guest_for_ip(VM1_IP)
    assert guest is not None and guest.name == "vm1"
    assert fabric.guest_for_ip("10.9.9.9") is None
    assert fabric.guest_for_ip(None) is None
    assert fabric.guest("nope") is None
    assert sorted(fabric.names()) == ["vm1", "vm2"]


def test_artifact_store_publishes_manifest_with_all_versions(tmp_path: Path) -> None:
    fabric, _ = make_fabric()
    store = fabric.artifacts
    url = store.publish_extension("Lab.Test.HelloExt", "1.0.0", b"zip-1")
    assert url == "http://10.199.0.2/artifacts/extensions/Lab.Test.HelloExt/manifest.xml"
    store.publish_extension("Lab.Test.HelloExt", "1.0.10", b"zip-10")
    store.publish_extension("Lab.Test.HelloExt", "1.0.2", b"zip-2")
    manifest = store.get("/artifacts/extensions/Lab.Test.HelloExt/manifest.xml")
    assert manifest is not None
    text = manifest.data.decode()
    assert text.index("1.0.2<") < text.index("1.0.10<")
    zipped = store.get("extensions/Lab.Test.HelloExt/Lab.Test.HelloExt__1.0.10.zip")
    assert zipped is not None and zipped.data == b"zip-10"
    with pytest.raises(ValueError):
        store.put("../etc/passwd", b"")
    (tmp_path / "Other.Ext__2.0.zip").write_bytes(b"z")
    (tmp_path / "README").write_text("ignored")
    assert store.load_directory(tmp_path) == [store.manifest_url("Other.Ext")]
    assert store.get("/artifacts/ga/Prod_manifest.xml") is not None
