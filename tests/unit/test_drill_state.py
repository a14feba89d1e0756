"""The drill's state document: shape, lock, atomic saves, the time freeze."""

from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lab.drill import state as drill_state
from lab.drill.state import DrillState, Symptom, Trainee
from lab.errors import BadInput


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SNAPLAB_STATE_DIR", str(tmp_path))
    return tmp_path


def _drill(name: str = "dra-one", limit: int | None = 2700) -> DrillState:
    return DrillState(
        name=name,
        started_at="2026-12-07T11:00:00Z",
        time_limit_s=limit,
        seed=7,
        trainees=[
            Trainee(id="t01", lab=f"{name}-t01", vm="vm1", scenario="blocked-egress"),
            Trainee(id="t02", lab=f"{name}-t02", vm="vm1", scenario="agent-stopped"),
        ],
    )


def test_round_trip_has_the_shared_shape(state_dir: Path) -> None:
    state = _drill()
    state.trainees[0].symptom = Symptom(error_code="ExtensionSnapshotFailedNoNetwork", message="m")
    state.trainees[0].record("started")
    drill_state.create(state)
    document = json.loads((state_dir / "drills" / "dra-one" / "drill.json").read_text())
    assert document["format"] == 1
    assert document["frozen_at"] is None and document["ended_at"] is None
    first = document["trainees"][0]
    assert set(first) == {
        "id",
        "lab",
        "vm",
        "scenario",
        "symptom",
        "symptom_job",
        "access",
        "events",
        "engine",
    }
    assert first["access"] == {"ssh": "", "env_file": ""}
    assert first["events"][0]["kind"] == "started"
    assert drill_state.load("dra-one") == state


def test_access_keeps_keys_it_does_not_know() -> None:
    trainee = Trainee.model_validate(
        {
            "id": "t01",
            "lab": "l",
            "vm": "vm1",
            "scenario": "s",
            "access": {"ssh": "ssh x", "env_file": "/e", "port": 2201},
        }
    )
    assert json.loads(trainee.model_dump_json())["access"]["port"] == 2201


def test_create_refuses_a_name_in_use() -> None:
    drill_state.create(_drill())
    with pytest.raises(BadInput, match="already exists"):
        drill_state.create(_drill())


@pytest.mark.parametrize("name", ["Dra", "1dra", "dra_x", "dra x", "a" * 17, ""])
def test_bad_names_are_bad_input(name: str) -> None:
    with pytest.raises(BadInput, match="--name"):
        drill_state.check_name(name)


def test_resolve_drill() -> None:
    with pytest.raises(drill_state.DrillNotFound):
        drill_state.resolve_drill(None)
    drill_state.create(_drill("dra-one"))
    assert drill_state.resolve_drill(None) == "dra-one"
    drill_state.create(_drill("dra-two"))
    with pytest.raises(BadInput, match="several drills"):
        drill_state.resolve_drill(None)
    with pytest.raises(drill_state.DrillNotFound):
        drill_state.resolve_drill("dra-three")


def test_locked_saves_only_on_success() -> None:
    drill_state.create(_drill())
    with drill_state.locked("dra-one") as state:
        state.trainee("t01").record("hint", step=1)
    with pytest.raises(RuntimeError), drill_state.locked("dra-one") as state:
        state.trainee("t01").record("hint", step=2)
        raise RuntimeError("boom")
    assert drill_state.load("dra-one").trainee("t01").hints == 1


def test_unknown_trainee_is_bad_input() -> None:
    with pytest.raises(BadInput, match="t09"):
        _drill().trainee("t09")


def test_counts() -> None:
    trainee = _drill().trainees[0]
    trainee.record("check", fixed=False)
    trainee.record("check", fixed=True)
    trainee.record("check", late=True)
    trainee.record("fixed")
    trainee.record("hint", step=1)
    assert (trainee.attempts, trainee.hints) == (2, 1)
    assert trainee.fixed_at is not None


def test_freeze_after_the_limit() -> None:
    state = _drill(limit=60)
    start = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)
    assert not state.freeze_if_due(start + timedelta(seconds=59))
    assert state.freeze_if_due(start + timedelta(seconds=61))
    assert state.frozen_at == "2026-12-07T11:01:00Z"
    assert not state.freeze_if_due(start + timedelta(seconds=120))  # once
    assert [e.kind for e in state.trainees[0].events] == ["frozen"]


def test_no_limit_never_freezes() -> None:
    state = _drill(limit=None)
    assert not state.freeze_if_due(datetime(2100, 1, 1, tzinfo=UTC))


def _add_hints(root: str, count: int) -> None:
    import os

    os.environ["SNAPLAB_STATE_DIR"] = root
    for step in range(count):
        with drill_state.locked("dra-one") as state:
            state.trainee("t01").record("hint", step=step)


def test_concurrent_writers_lose_nothing(state_dir: Path) -> None:
    drill_state.create(_drill())
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_add_hints, args=(str(state_dir), 20)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert drill_state.load("dra-one").trainee("t01").hints == 60


def test_a_broken_file_is_one_error(state_dir: Path) -> None:
    drill_state.create(_drill())
    (state_dir / "drills" / "dra-one" / "drill.json").write_text("{}")
    with pytest.raises(drill_state.DrillStateError, match="not a drill"):
        drill_state.load("dra-one")
