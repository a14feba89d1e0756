"""Fakes for the backup service's seams: storage, the agent, and a sleep that moves a
fake clock. The fake agent answers a settings push the way a scripted extension would,
and its reports go through the real status parser (``read_handler_report``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lab.extension.protocol import (
    HANDLER_NAME,
    DiskSnapshot,
    ProtectedSettings,
    PublicSettings,
    SnapshotResult,
)
from lab.platform.backup.agent import HandlerReport, read_handler_report
from lab.platform.backup.disks import DISK_CONTAINER, OS_DISK_SIZE, os_disk_name
from lab.platform.backup.storage import Disk, StorageError
from tests.unit.fabric_samples import FakeClock, vm_status

ACCOUNT_URL = "http://10.199.0.3:10000/devstoreaccount1"


class FakeStorage:
    """In-memory blob storage: snapshots per disk, vault copies by name."""

    def __init__(self, *, ready: bool = True) -> None:
        self._ready = ready
        self.snapshots: dict[str, list[str]] = {}
        self.vault: dict[str, tuple[str, str]] = {}
        self.transfer_error: str | None = None
        self._counter = 0

    @property
    def account_url(self) -> str:
        return ACCOUNT_URL

    def ready(self) -> bool:
        return self._ready

    def disks(self, vm: str) -> list[Disk]:
        name = os_disk_name(vm)
        return [Disk(name, f"{ACCOUNT_URL}/{DISK_CONTAINER}/{name}", OS_DISK_SIZE)]

    def disk_sas_url(self, disk: Disk, expiry: datetime) -> str:
        return f"{disk.url}?sp=rcw&se={expiry:%Y-%m-%dT%H:%M:%SZ}&sig=fake"

    def status_blob_sas_url(self, vm: str, task_id: str, expiry: datetime) -> str:
        return f"{ACCOUNT_URL}/vmstatus/{vm}/{task_id}.status?sp=rcw&sig=fake"

    def take_snapshot(self, disk_name: str) -> str:
        """What the extension's ``PUT ?comp=snapshot`` does."""
        self._counter += 1
        stamp = f"2026-11-27T21:56:{self._counter:02d}.0000000Z"
        self.snapshots.setdefault(disk_name, []).append(stamp)
        return stamp

    def snapshot_exists(self, disk: Disk, snapshot: str) -> bool:
        return snapshot in self.snapshots.get(disk.name, [])

    def snapshot_disk(self, disk: Disk) -> str:
        """The host's own snapshot of a stopped VM's disk."""
        return self.take_snapshot(disk.name)

    def transfer_to_vault(
        self, disk: Disk, snapshot: str, vault_blob: str, expiry: datetime
    ) -> None:
        if self.transfer_error:
            raise StorageError(self.transfer_error)
        if not self.snapshot_exists(disk, snapshot):
            raise StorageError(f"no snapshot {snapshot} of {disk.name}")
        self.vault[vault_blob] = (disk.name, snapshot)


def status_with_result(result: SnapshotResult, seq: int, now: datetime) -> dict[str, Any]:
    """A VM status document whose VMSnapshot handler reports ``result`` for ``seq``, in
    the shape the agent forwards an extension's status file."""
    document = vm_status()
    settings_status = result.status_document(now)[0]
    document["aggregateStatus"]["handlerAggregateStatus"] = [
        {
            "handlerVersion": "1.0.92.0",
            "handlerName": HANDLER_NAME,
            "status": "Ready",
            "code": 0,
            "useExactVersion": True,
            "formattedMessage": {"lang": "en-US", "message": "Plugin enabled"},
            "runtimeSettingsStatus": {"settingsStatus": settings_status, "sequenceNumber": seq},
        }
    ]
    return document


@dataclass
class Push:
    vm: str
    seq_no: int
    public: PublicSettings
    protected: ProtectedSettings


Behaviour = Callable[["FakeAgent", Push], None]


@dataclass
class FakeAgent:
    """The agent as a job sees it; ``behaviour`` plays the extension on each push."""

    storage: FakeStorage
    clock: FakeClock
    ready: bool = True
    behaviour: Behaviour | None = None
    pushes: list[Push] = field(default_factory=list)
    reports: dict[str, HandlerReport] = field(default_factory=dict)
    goal_state_seq: dict[str, int] = field(default_factory=dict)
    power: dict[str, str] = field(default_factory=dict)  # the platform's; default running

    def agent_ready(self, vm: str) -> bool:
        return self.ready

    def current_seq_no(self, vm: str) -> int | None:
        return self.goal_state_seq.get(vm)

    def push_settings(
        self, vm: str, seq_no: int, public: Mapping[str, Any], protected: Mapping[str, Any]
    ) -> str:
        push = Push(
            vm,
            seq_no,
            PublicSettings.from_json(dict(public)),
            ProtectedSettings.from_json(dict(protected)),
        )
        self.pushes.append(push)
        self.goal_state_seq[vm] = seq_no
        if self.behaviour is not None:
            self.behaviour(self, push)
        return str(len(self.pushes) + 1)

    def handler_report(self, vm: str) -> HandlerReport | None:
        return self.reports.get(vm)

    def power_state(self, vm: str) -> str:
        return self.power.get(vm, "running")

    def report(self, push: Push, result: SnapshotResult) -> None:
        document = status_with_result(result, push.seq_no, self.clock.now())
        report = read_handler_report(document)
        assert report is not None
        self.reports[push.vm] = report


def snapshots_every_disk(agent: FakeAgent, push: Push) -> None:
    """A healthy extension: one snapshot per SAS URL, then success (code 1)."""
    taken = []
    for uri in push.protected.disk_sas_uris:
        blob_uri = uri.split("?", 1)[0]
        taken.append(
            DiskSnapshot(blob_uri, agent.storage.take_snapshot(blob_uri.rsplit("/", 1)[1]))
        )
    agent.report(
        push, SnapshotResult(push.public.task_id, "success", 1, "snapshots taken", tuple(taken))
    )


def fails_with(code: int, message: str) -> Behaviour:
    def behaviour(agent: FakeAgent, push: Push) -> None:
        agent.report(push, SnapshotResult(push.public.task_id, "error", code, message))

    return behaviour


def stays_transitioning(agent: FakeAgent, push: Push) -> None:
    """The extension started but never finishes (or the agent never reports it)."""
    agent.report(push, SnapshotResult(push.public.task_id, "transitioning", 0, "in progress"))


def advancing_sleep(clock: FakeClock) -> Callable[[float], None]:
    """A sleep that moves the fake clock instead of waiting."""

    def sleep(seconds: float) -> None:
        clock.advance(seconds)

    return sleep
