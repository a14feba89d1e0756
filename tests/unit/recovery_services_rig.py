"""A lab's vault without a lab, for the Recovery Services tests: the unmodified SDKs
over TLS to the ARM twin, whose :class:`HttpBackupFabric` talks over HTTP to the real
control API and backup service, with storage, the agent and the clock faked as in the
backup service's own tests (``tests/unit/backup_fakes.py``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
from azure.mgmt.recoveryservicesbackup import models as m
from werkzeug.serving import make_server

from lab.azure_sdk import backup_client, vaults_client
from lab.platform.arm import naming
from lab.platform.arm import recovery_services as provider_module
from lab.platform.arm.app import ArmTwin
from lab.platform.arm.main import build_server, tls_context
from lab.platform.arm.recovery_services_fabric import HttpBackupFabric
from lab.platform.backup.runner import BackupTimings
from lab.platform.backup.service import BackupService
from lab.platform.backup.store import BackupStore
from lab.platform.control import ControlApp
from lab.platform.guest_state import Fabric
from lab.platform.roster import GuestEntry, Roster
from lab.provision.tls import write_lab_tls
from tests.unit.backup_fakes import FakeAgent, FakeStorage, advancing_sleep, snapshots_every_disk
from tests.unit.fabric_samples import FakeClock, make_fabric, make_roster
from tests.unit.test_armtwin import FakePower

TOKEN = "lab-token-rs-0123456789"
SCALE = 240.0
SUBTASK_TIMEOUT = 20.0  # lab seconds: 80 Azure minutes at 240


class HeldSpawn:
    """Keeps job workers until the test runs them."""

    def __init__(self) -> None:
        self.pending: list[Callable[[], object]] = []

    def __call__(self, name: str, target: Callable[[], object]) -> None:
        self.pending.append(target)

    def run_all(self) -> None:
        while self.pending:
            self.pending.pop(0)()


@dataclass
class Vault:
    """The SDK clients, and what stands behind the twin."""

    backup: RecoveryServicesBackupClient
    vaults: RecoveryServicesClient
    endpoint: str
    roster: Roster
    clock: FakeClock
    agent: FakeAgent
    spawn: HeldSpawn
    service: BackupService
    twin: ArmTwin
    ca_file: Path

    @property
    def rg(self) -> str:
        return self.roster.resource_group

    @property
    def name(self) -> str:
        return naming.vault_name(self.roster)

    def item(self, vm: str) -> tuple[str, str, str]:
        """(fabric, container, item) of ``vm``, as a runbook passes them."""
        return (
            naming.BACKUP_FABRIC,
            naming.backup_container_name(self.roster, vm),
            naming.protected_item_name(self.roster, vm),
        )

    def trigger(self, vm: str) -> dict[str, str]:
        """``backups.trigger``; returns the 202's headers."""
        headers: dict[str, str] = {}

        def keep(response: Any, body: Any, _: Any) -> None:
            headers.update(response.http_response.headers)

        self.backup.backups.trigger(
            self.name,
            self.rg,
            *self.item(vm),
            m.BackupRequestResource(properties=m.IaasVMBackupRequest()),
            cls=keep,
        )
        return headers


def serve_http(app: Any) -> tuple[Any, str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.socket.getsockname()[1]}"


def serve_vault(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    vms: int = 2,
    spawn: Callable[[str, Callable[[], object]], None] | None = None,
) -> Iterator[Vault]:
    """The rig with ``vms`` guests; jobs held for the test (``spawn`` None) or run as
    they start (``run_now``)."""
    if vms == 2:
        fabric, clock = make_fabric(stale_after=20.0)
    else:
        clock = FakeClock()
        base = make_roster()
        guests = tuple(
            GuestEntry(
                f"vm{n}",
                f"10.199.0.{10 + n}",
                f"02:42:0a:c7:00:{10 + n:02x}",
                "2.7.3.0",
                f"snaplab-unit-vm{n}",
            )
            for n in range(1, vms + 1)
        )
        fabric = Fabric(replace(base, guests=guests), clock=clock, stale_after_seconds=20.0)
    storage = FakeStorage()
    agent = FakeAgent(storage, clock, behaviour=snapshots_every_disk)
    held = HeldSpawn()
    service = BackupService(
        vms=fabric.names(),
        store=BackupStore(":memory:"),
        storage=storage,
        agent=agent,
        clock=clock,
        timings=lambda: BackupTimings(SCALE, SUBTASK_TIMEOUT, 60.0),
        spawn=spawn or held,
        sleep=advancing_sleep(clock),
        run_schedules=False,
    )
    control, control_url = serve_http(ControlApp(fabric, service))
    # The fabric's times are on the fake clock: so is the twin's wall clock.
    monkeypatch.setattr(provider_module, "wall_now", clock.now)
    http_fabric = HttpBackupFabric(control_url)
    twin = ArmTwin(http_fabric, FakePower(), TOKEN, backup=http_fabric)
    files = write_lab_tls("unit", tmp_path / "tls")
    server = build_server(twin, 0, tls_context(files.server_cert, files.server_key))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"https://127.0.0.1:{server.socket.getsockname()[1]}"
    roster = fabric.roster
    backup = backup_client(endpoint, TOKEN, roster.subscription_id, files.ca_cert)
    vaults = vaults_client(endpoint, TOKEN, roster.subscription_id, files.ca_cert)
    yield Vault(backup, vaults, endpoint, roster, clock, agent, held, service, twin, files.ca_cert)
    backup.close()
    vaults.close()
    for srv in (server, control):
        srv.shutdown()
        srv.server_close()


def run_now(name: str, target: Callable[[], object]) -> None:
    """A spawn that runs the job at once, on the caller's thread."""
    target()


@pytest.fixture
def vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Vault]:
    yield from serve_vault(tmp_path, monkeypatch)
