"""A drill's state: one JSON document per drill, shared by every ``snaplab drill`` command.

Kept at ``state_root()/drills/<drill>/drill.json`` (the trainer's copy: it names each
trainee's scenario) beside ``roster.txt`` and ``trainees/<id>/`` (each trainee's access
files). Several ``drill`` commands may run at once (a check for t01 while t02 asks for a
hint), so every change goes through :func:`locked`: an exclusive ``flock`` on the drill's
lock file around load, change and an atomic replace of ``drill.json``. Readers that only
look (the board) use :func:`load`, which takes the lock shared.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lab.errors import BadInput, SnaplabError
from lab.provision.state_dir import state_root

STATE_FORMAT = 1
STATE_FILE = "drill.json"
LOCK_FILE = ".lock"

EventKind = Literal["started", "check", "hint", "reset", "fixed", "frozen", "ended"]

# A drill name becomes part of each lab's name (``<drill>-t01``, at most 20 characters
# as every lab name) and a folder name.
NAME_MAX = 16
_NAME = re.compile(rf"^[a-z][a-z0-9-]{{0,{NAME_MAX - 1}}}$")


class DrillNotFound(SnaplabError):
    """No drill carries this name (or its state is gone)."""

    exit_code = 2


class DrillStateError(SnaplabError):
    """A drill's ``drill.json`` cannot be read as a drill."""


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Symptom(BaseModel):
    """What the trainee is told: the first failing backup's error code and message."""

    error_code: str
    message: str


class Access(BaseModel):
    """How a trainee connects (filled by :mod:`lab.drill.access`; more keys allowed)."""

    model_config = ConfigDict(extra="allow")

    ssh: str = ""
    env_file: str = ""


class Event(BaseModel):
    at: str = Field(default_factory=now_iso)
    kind: EventKind
    detail: dict[str, Any] = Field(default_factory=dict)


class Trainee(BaseModel):
    id: str
    lab: str
    vm: str
    scenario: str
    symptom: Symptom | None = None
    # The failing job the symptom came from (id, trigger, policy): the trainer's, so a
    # check repeats the same kind of backup (a scheduled failure is checked on the
    # schedule's next run).
    symptom_job: dict[str, Any] = Field(default_factory=dict)
    access: Access = Field(default_factory=Access)
    events: list[Event] = Field(default_factory=list)
    # The Docker engine the lab is on (its URL; "" = the environment's own engine).
    engine: str = ""

    def record(self, kind: EventKind, at: str | None = None, **detail: Any) -> Event:
        event = Event(at=at or now_iso(), kind=kind, detail=detail)
        self.events.append(event)
        return event

    def of_kind(self, kind: EventKind) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    @property
    def attempts(self) -> int:
        """Checks that ran (late ones, refused after the time limit, do not count)."""
        return sum(1 for e in self.of_kind("check") if not e.detail.get("late"))

    @property
    def hints(self) -> int:
        return len(self.of_kind("hint"))

    @property
    def fixed_at(self) -> str | None:
        fixed = self.of_kind("fixed")
        return fixed[0].at if fixed else None


class DrillState(BaseModel):
    format: int = STATE_FORMAT
    name: str
    started_at: str = Field(default_factory=now_iso)
    time_limit_s: int | None = None
    frozen_at: str | None = None
    ended_at: str | None = None
    seed: int | None = None
    trainees: list[Trainee] = Field(default_factory=list)

    def trainee(self, trainee_id: str) -> Trainee:
        for trainee in self.trainees:
            if trainee.id == trainee_id:
                return trainee
        known = ", ".join(t.id for t in self.trainees)
        raise BadInput(f"trainee {trainee_id!r}: drill {self.name!r} has no such trainee ({known})")

    @property
    def deadline(self) -> datetime | None:
        if self.time_limit_s is None:
            return None
        return parse_iso(self.started_at) + timedelta(seconds=self.time_limit_s)

    def past_limit(self, moment: datetime | None = None) -> bool:
        deadline = self.deadline
        return deadline is not None and (moment or datetime.now(UTC)) >= deadline

    def freeze_if_due(self, moment: datetime | None = None) -> bool:
        """Freeze the board once the time limit has passed; True when it froze just now."""
        if self.frozen_at is not None or not self.past_limit(moment):
            return False
        deadline = self.deadline
        assert deadline is not None
        self.frozen_at = deadline.strftime("%Y-%m-%dT%H:%M:%SZ")
        for trainee in self.trainees:
            trainee.record("frozen", at=self.frozen_at)
        return True

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"


# ---------------------------------------------------------------------- files


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise BadInput(
            f"--name {name!r}: a drill name is lowercase letters, digits and '-', "
            f"starting with a letter, at most {NAME_MAX} characters"
        )
    return name


def drills_root() -> Path:
    return state_root() / "drills"


def drill_dir(name: str) -> Path:
    return drills_root() / check_name(name)


def trainee_dir(name: str, trainee_id: str) -> Path:
    """Where :mod:`lab.drill.access` keeps a trainee's key, env file and banner."""
    return drill_dir(name) / "trainees" / trainee_id


def state_file(name: str) -> Path:
    return drill_dir(name) / STATE_FILE


def drill_names() -> list[str]:
    root = drills_root()
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob(f"*/{STATE_FILE}"))


def resolve_drill(name: str | None) -> str:
    """The named drill, or the only one when no name is given."""
    names = drill_names()
    if name is not None:
        if name not in names:
            raise DrillNotFound(f"drill {name!r}: no such drill (drills: {_list(names)})")
        return name
    if len(names) == 1:
        return names[0]
    if not names:
        raise DrillNotFound("no drill is running (start one with `snaplab drill start`)")
    raise BadInput(f"several drills are running ({_list(names)}): give --drill NAME")


def _list(names: list[str]) -> str:
    return ", ".join(names) or "none"


@contextmanager
def _lock(name: str, exclusive: bool) -> Iterator[None]:
    folder = drill_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read(name: str) -> DrillState:
    path = state_file(name)
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise DrillNotFound(f"drill {name!r}: no state at {path}") from exc
    try:
        state = DrillState.model_validate_json(text)
    except ValidationError as exc:
        raise DrillStateError(f"{path}: not a drill's state ({exc.errors()[0]['msg']})") from exc
    if state.format != STATE_FORMAT:
        raise DrillStateError(f"{path}: format {state.format}, expected {STATE_FORMAT}")
    return state


def _write(state: DrillState) -> None:
    """Replace ``drill.json`` atomically: a reader never sees half a document."""
    folder = drill_dir(state.name)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".drill-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(state.to_json())
        os.replace(tmp, folder / STATE_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(name: str) -> DrillState:
    with _lock(name, exclusive=False):
        return _read(name)


def create(state: DrillState) -> None:
    """Write a new drill's first state; refuses a name already in use."""
    with _lock(state.name, exclusive=True):
        if state_file(state.name).exists():
            raise BadInput(f"--name {state.name!r}: a drill with this name already exists")
        _write(state)


def save(state: DrillState) -> None:
    with _lock(state.name, exclusive=True):
        _write(state)


@contextmanager
def locked(name: str) -> Iterator[DrillState]:
    """Load, let the caller change, save: all under the drill's exclusive lock.

    The state is saved only when the block ends without an exception. Keep the block
    short (no backups inside it): other commands of the drill wait on the lock.
    """
    with _lock(name, exclusive=True):
        state = _read(name)
        yield state
        _write(state)
