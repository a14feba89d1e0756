"""The backup service <-> extension contract: settings, ticks and results survive a
round trip through their JSON forms, and the status file reads back as written."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.extension import protocol

MOMENTS = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
TEXT = st.text(max_size=40)
URIS = st.lists(TEXT, max_size=5).map(tuple)
SNAPSHOTS = st.lists(st.builds(protocol.DiskSnapshot, TEXT, TEXT), max_size=4).map(tuple)
RESULTS = st.builds(
    protocol.SnapshotResult,
    task_id=TEXT,
    status=st.sampled_from(["transitioning", "success", "error"]),
    code=st.sampled_from(sorted(protocol.CODE_NAMES)),
    message=TEXT,
    snapshots=SNAPSHOTS,
)


@given(MOMENTS)
def test_ticks_round_trip_to_the_microsecond(moment: datetime) -> None:
    assert protocol.from_ticks(protocol.to_ticks(moment)) == moment


@given(st.integers(min_value=600_000_000_000_000_000, max_value=700_000_000_000_000_000))
def test_ticks_lose_only_the_sub_microsecond_part(ticks: int) -> None:
    assert protocol.to_ticks(protocol.from_ticks(ticks)) == ticks - ticks % 10


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.just(timezone(timedelta(hours=-5))),
    )
)
def test_ticks_are_utc_whatever_the_offset(moment: datetime) -> None:
    assert protocol.from_ticks(protocol.to_ticks(moment)) == moment


def test_ticks_match_dotnet() -> None:
    assert protocol.to_ticks(datetime(1970, 1, 1, tzinfo=UTC)) == 621355968000000000
    assert protocol.to_ticks(datetime(2024, 1, 1, tzinfo=UTC)) == 638396640000000000


@given(
    st.builds(
        protocol.PublicSettings,
        task_id=TEXT,
        command_start=MOMENTS,
        time_scale=st.floats(min_value=1e-3, max_value=1e6),
        locale=TEXT,
        command=TEXT,
        vm_type=TEXT,
    )
)
def test_public_settings_round_trip(settings: protocol.PublicSettings) -> None:
    wire = json.loads(json.dumps(settings.to_json()))
    assert isinstance(wire["commandStartTimeUTCTicks"], str)
    assert protocol.PublicSettings.from_json(wire) == settings


@given(st.builds(protocol.ProtectedSettings, URIS, TEXT, st.none() | TEXT))
def test_protected_settings_round_trip(settings: protocol.ProtectedSettings) -> None:
    wire = json.loads(json.dumps(settings.to_json()))
    listing = json.loads(base64.b64decode(wire["objectStr"]))
    assert listing == {"blobSASUri": list(settings.disk_sas_uris)}
    assert protocol.ProtectedSettings.from_json(wire) == settings


@given(URIS)
def test_a_bare_list_object_str_is_still_read(uris: tuple[str, ...]) -> None:
    object_str = base64.b64encode(json.dumps(list(uris)).encode()).decode()
    raw = {"objectStr": object_str, "statusBlobUri": "s"}
    assert protocol.ProtectedSettings.from_json(raw).disk_sas_uris == uris


@given(RESULTS)
def test_results_round_trip_through_the_substatus(result: protocol.SnapshotResult) -> None:
    again = protocol.SnapshotResult.from_substatus(
        result.status, result.code, result.message, result.substatus_message()
    )
    assert again == result


@given(RESULTS, MOMENTS)
def test_results_round_trip_through_the_status_file(
    result: protocol.SnapshotResult, now: datetime
) -> None:
    document = json.loads(json.dumps(result.status_document(now)))
    assert len(document) == 1
    assert document[0]["version"] == "1.0"
    assert document[0]["timestampUTC"] == now.strftime("%Y-%m-%dT%H:%M:%SZ")
    status = document[0]["status"]
    assert status["operation"] == "Enable"
    assert status["formattedMessage"]["lang"] == "en-US"
    assert protocol.SnapshotResult.from_status(status) == result


@pytest.mark.parametrize(
    "raw",
    [
        None,
        {"taskId": "t", "commandToExecute": "snapshot"},
        {"taskId": "t", "commandToExecute": "snapshot", "commandStartTimeUTCTicks": "soon"},
        {
            "taskId": "t",
            "commandToExecute": "snapshot",
            "commandStartTimeUTCTicks": "638000000000000000",
            protocol.TIME_SCALE_KEY: 0,
        },
        {
            "taskId": "t",
            "commandToExecute": "snapshot",
            "commandStartTimeUTCTicks": "638000000000000000",
            protocol.TIME_SCALE_KEY: "NaN",
        },
    ],
)
def test_bad_public_settings_are_settings_errors(raw: object) -> None:
    with pytest.raises(protocol.SettingsError):
        protocol.PublicSettings.from_json(raw)


def test_a_status_without_the_result_substatus_is_refused() -> None:
    with pytest.raises(protocol.SettingsError, match="VMSnapshotResult"):
        protocol.SnapshotResult.from_status({"status": "success", "code": 1})


def test_too_late_scales_with_the_lab_clock() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    settings = protocol.PublicSettings("t", start, time_scale=240)
    assert settings.too_late_at() == start + timedelta(seconds=35)
    # Never earlier than the agent can deliver a task (the floor), whatever the scale.
    fast = protocol.PublicSettings("t", start, time_scale=6000)
    assert fast.too_late_at() == start + timedelta(seconds=20)
    # Without the lab key the extension runs on Azure's own clock.
    assert protocol.PublicSettings("t", start).too_late_at() == start + timedelta(minutes=140)


def test_codes_carry_the_real_names() -> None:
    assert protocol.status_code_tag(76) == " StatusCode.FailedRetryableSnapshotFailedNoNetwork,"
    assert protocol.CODE_NAMES[protocol.CODE_PRESCRIPT_TIMEOUT] == "FailedPrepostPreScriptTimeout"
    assert protocol.CODE_NAMES[protocol.CODE_TOO_LATE] == "FailedGuestAgentInvokedCommandTooLate"
    assert sorted(protocol.SUCCESS_CODES) == [0, 1]
