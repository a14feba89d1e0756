"""The one table of Azure durations: the platform and the extension in the guest read the
same numbers, and the orderings Azure's clock has hold on the lab's clock at any scale."""

from __future__ import annotations

import importlib.util
import io
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.extension import durations, package, protocol
from lab.extension.handler.main.vmsnapshot import durations as handler_durations
from lab.platform import timescale

README = Path(__file__).resolve().parents[2] / "README.md"
SHIPPED = "main/vmsnapshot/durations.py"
lab_scales = st.floats(min_value=1.0, max_value=1e4, allow_nan=False)


def shipped_module(tmp_path: Path) -> ModuleType:
    """``durations.py`` as the handler zip carries it, imported on its own."""
    blob = package.build_handler_zip(protocol.LATEST_VERSION)
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        source = archive.read(SHIPPED)
    path = tmp_path / "shipped_durations.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("shipped_durations", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_the_zip_ships_this_very_file() -> None:
    blob = package.build_handler_zip(protocol.LATEST_VERSION)
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        assert archive.read(SHIPPED) == Path(durations.__file__).read_bytes()


def test_the_zip_carries_the_platforms_table(tmp_path: Path) -> None:
    shipped = shipped_module(tmp_path)
    guest = [(d.what, d.azure, d.floor_seconds, d.side) for d in shipped.TABLE]
    platform = [(d.what, d.azure, d.floor_seconds, d.side) for d in timescale.TABLE]
    assert guest == platform
    assert shipped.STATUS_BLOB_WRITE_TRIES == timescale.STATUS_BLOB_WRITE_TRIES
    for scale in (1.0, 60.0, 240.0):
        assert [d.lab_seconds(scale) for d in shipped.TABLE] == [
            d.lab_seconds(scale) for d in timescale.TABLE
        ]


def test_one_table_behind_every_import() -> None:
    assert timescale.TABLE is durations.TABLE
    assert handler_durations.TABLE is durations.TABLE
    assert timescale.SNAPSHOT_SUBTASK_TIMEOUT is durations.SNAPSHOT_SUBTASK_TIMEOUT
    assert durations.EXTENSION_TOO_LATE_AFTER.azure == protocol.TOO_LATE_AFTER


@pytest.mark.parametrize("entry", durations.TABLE, ids=lambda d: d.what[:40])
def test_every_entry_says_what_it_is_and_where_its_number_comes_from(
    entry: durations.AzureDuration,
) -> None:
    assert entry.what and entry.source and entry.floor_reason
    assert entry.side in (durations.PLATFORM, durations.GUEST)
    assert entry.floor_seconds < entry.azure_seconds
    assert entry.lab_seconds(1.0) == entry.azure_seconds


def test_the_guest_sides_azure_numbers() -> None:
    assert durations.STORAGE_CALL_TIMEOUT.azure_seconds == 10
    assert durations.FREEZE_TIMEOUT.azure_seconds == 60
    assert durations.SAFE_FREEZE_WAIT.azure_seconds == 66
    assert durations.SCRIPT_TIMEOUT_CAP.azure_seconds == 1800
    assert durations.SCRIPT_TIMEOUT_DEFAULT.azure_seconds == 10
    assert durations.EXTENSION_TOO_LATE_AFTER.azure_seconds == 140 * 60
    assert durations.STATUS_BLOB_WRITE_TRIES == 3
    guest = {d for d in durations.TABLE if d.side == durations.GUEST}
    assert durations.STORAGE_CALL_TIMEOUT in guest
    assert durations.SNAPSHOT_SUBTASK_TIMEOUT not in guest


def test_the_lab_values_at_the_default_scale() -> None:
    at = {d: d.lab_seconds(240) for d in durations.TABLE}
    assert at[durations.SNAPSHOT_SUBTASK_TIMEOUT] == pytest.approx(23.75)
    assert at[durations.EXTENSION_TOO_LATE_AFTER] == pytest.approx(35.0)
    assert at[durations.SCRIPT_TIMEOUT_CAP] == pytest.approx(7.5)
    assert at[durations.STORAGE_CALL_TIMEOUT] == 1.0  # the floor
    assert at[durations.SAFE_FREEZE_WAIT] == 10.0  # the floor
    assert at[durations.AGENT_STATUS_STALE_AFTER] == 20.0  # the floor


@given(lab_scales)
def test_azures_orderings_hold_at_any_scale(scale: float) -> None:
    subtask = durations.SNAPSHOT_SUBTASK_TIMEOUT.lab_seconds(scale)
    # The extension never refuses a task the platform is still waiting for.
    assert durations.EXTENSION_TOO_LATE_AFTER.lab_seconds(scale) >= subtask
    # A SAS outlives both the job's wait and the extension's "too late" rule.
    sas = durations.BACKUP_SAS_EXPIRY.lab_seconds(scale)
    assert sas > subtask
    assert sas >= durations.EXTENSION_TOO_LATE_AFTER.lab_seconds(scale)
    # A hung script is cut off (308/309) before the platform stops waiting.
    assert durations.SCRIPT_TIMEOUT_CAP.lab_seconds(scale) < subtask
    # With storage unreachable the extension still reports (76) in time: the
    # transitioning status blob's tries, then one call that fails.
    call = durations.STORAGE_CALL_TIMEOUT.lab_seconds(scale)
    assert (durations.STATUS_BLOB_WRITE_TRIES + 1) * call < subtask / 3
    # A freeze that never comes is reported (122) before the platform gives up.
    freeze = durations.SAFE_FREEZE_WAIT.lab_seconds(scale)
    assert freeze + durations.FREEZE_TIMEOUT.lab_seconds(scale) < subtask


def test_a_configured_value_keeps_its_kinds_floor() -> None:
    custom = durations.SCRIPT_TIMEOUT_DEFAULT.with_azure_seconds(300)
    assert custom.azure_seconds == 300
    assert custom.floor_seconds == durations.SCRIPT_TIMEOUT_DEFAULT.floor_seconds
    assert custom.lab_seconds(240) == 2.0
    assert custom.lab_seconds(60) == 5.0
    assert custom.lab_seconds(1) == 300
    assert durations.SCRIPT_TIMEOUT_DEFAULT.with_azure_seconds(0.5).lab_seconds(1) == 0.5


def test_describe_names_both_clocks() -> None:
    assert durations.STORAGE_CALL_TIMEOUT.describe(240) == (
        "10 s on Azure's clock = 1 s in the lab (time scale 240, floor 1 s)"
    )
    assert durations.SNAPSHOT_SUBTASK_TIMEOUT.describe(240) == (
        "95 min on Azure's clock = 23.75 s in the lab (time scale 240)"
    )
    assert durations.EXTENSION_TOO_LATE_AFTER.describe(1) == (
        "2 h 20 min on Azure's clock = 2 h 20 min in the lab (time scale 1)"
    )


def test_the_readme_shows_the_table_in_code() -> None:
    table = durations.markdown_table(durations.DEFAULT_TIME_SCALE)
    assert len(table.splitlines()) == len(durations.TABLE) + 2
    assert table in README.read_text(encoding="utf-8")
