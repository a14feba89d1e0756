"""The control API the CLI and the ARM twin read."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest
from werkzeug.test import Client

from lab.extension.protocol import HANDLER_NAME
from lab.platform.backup.agent import FabricAgentChannel
from lab.platform.backup.runner import BackupTimings
from lab.platform.backup.service import BackupService
from lab.platform.backup.store import BackupStore
from lab.platform.control import ControlApp
from lab.platform.documents import HandlerSpec
from lab.platform.guest_state import CHANNEL_HOSTPLUGIN, Fabric
from lab.platform.roster import Roster
from tests.unit.backup_fakes import FakeAgent, FakeStorage, advancing_sleep, snapshots_every_disk
from tests.unit.fabric_samples import FakeClock, make_fabric, make_roster, status_bytes

VM_KEYS = {"name", "ip", "incarnation", "agent", "health", "os", "extensions", "power_state"}
AGENT_KEYS = {"version", "status", "message", "last_report", "report_age_seconds"}


@pytest.fixture
def fabric_and_clock() -> tuple[Fabric, FakeClock]:
    return make_fabric(stale_after=20.0)


@pytest.fixture
def client(fabric_and_clock: tuple[Fabric, FakeClock]) -> Client:
    return Client(ControlApp(fabric_and_clock[0]))


def test_health(client: Client) -> None:
    assert json.loads(client.get("/control/v1/health").data) == {"ok": True, "lab": "unit"}


def test_roster_round_trips(client: Client) -> None:
    response = client.get("/control/v1/roster")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert Roster.from_json(response.data.decode()) == make_roster()


def test_vms_lists_every_guest(client: Client) -> None:
    doc = json.loads(client.get("/control/v1/vms").data)
    assert doc["lab"] == "unit"
    assert [vm["name"] for vm in doc["vms"]] == ["vm1", "vm2"]
    for vm in doc["vms"]:
        assert set(vm) == VM_KEYS
        assert set(vm["agent"]) == AGENT_KEYS
        assert vm["agent"]["status"] == "Not Ready"


def test_vm_view_follows_reports_and_staleness(
    client: Client, fabric_and_clock: tuple[Fabric, FakeClock]
) -> None:
    fabric, clock = fabric_and_clock
    guest = fabric.guest("vm1")
    assert guest is not None
    guest.record_status(status_bytes(), CHANNEL_HOSTPLUGIN)
    guest.record_health("Ready")
    clock.advance(2.5)
    vm = json.loads(client.get("/control/v1/vms/vm1").data)
    assert set(vm) == VM_KEYS
    assert vm["ip"] == "10.199.0.11"
    assert vm["incarnation"] == "1"
    assert vm["agent"]["status"] == "Ready"
    assert vm["agent"]["version"] == "2.7.3.0"
    assert vm["agent"]["report_age_seconds"] == 2.5
    assert vm["agent"]["last_report"] == "2026-11-27T21:56:23Z"
    assert vm["health"]["state"] == "Ready"
    assert vm["os"] == {"computer_name": "vm1", "name": "debian", "version": "12"}
    assert vm["extensions"][0]["name"] == "Lab.Test.HelloExt"
    assert vm["extensions"][0]["status"] == "success"
    clock.advance(30)
    stale = json.loads(client.get("/control/v1/vms/vm1").data)
    assert stale["agent"]["status"] == "Not Ready"


def test_status_raw(client: Client, fabric_and_clock: tuple[Fabric, FakeClock]) -> None:
    assert client.get("/control/v1/vms/vm1/status-raw").status_code == 404
    guest = fabric_and_clock[0].guest("vm1")
    assert guest is not None
    guest.record_status(status_bytes(ext_status="error"), CHANNEL_HOSTPLUGIN)
    response = client.get("/control/v1/vms/vm1/status-raw")
    assert response.status_code == 200
    doc = json.loads(response.data)
    handler = doc["aggregateStatus"]["handlerAggregateStatus"][0]
    assert handler["runtimeSettingsStatus"]["settingsStatus"]["status"]["status"] == "error"


def test_incarnation_bump(client: Client, fabric_and_clock: tuple[Fabric, FakeClock]) -> None:
    response = client.post("/control/v1/vms/vm2/incarnation")
    assert response.status_code == 200
    assert json.loads(response.data) == {"name": "vm2", "incarnation": "2"}
    guest = fabric_and_clock[0].guest("vm2")
    assert guest is not None and guest.incarnation == "2"
    assert json.loads(client.get("/control/v1/vms/vm2").data)["incarnation"] == "2"


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/control/v1/vms/nobody", 404),
        ("GET", "/control/v1/vms/nobody/status-raw", 404),
        ("POST", "/control/v1/vms/nobody/incarnation", 404),
        ("GET", "/control/v1/vms/vm1/incarnation", 405),
        ("POST", "/control/v1/vms", 405),
        ("DELETE", "/control/v1/vms/vm1", 405),
        ("PUT", "/control/v1/roster", 405),
        ("POST", "/control/v1/vms/vm1/status-raw", 405),
        ("GET", "/control/v1/vms/vm1/other", 404),
        ("GET", "/control/v2/vms", 404),
        ("GET", "/", 404),
        ("GET", "/control/v1", 404),
    ],
)
def test_errors_are_json(client: Client, method: str, path: str, expected: int) -> None:
    response = client.open(path, method=method)
    assert response.status_code == expected
    assert "error" in json.loads(response.data)


# --------------------------------------------------------------------------- backups


class HeldSpawn:
    """Keeps job workers until the test runs them."""

    def __init__(self) -> None:
        self.pending: list[Callable[[], object]] = []

    def __call__(self, name: str, target: Callable[[], object]) -> None:
        self.pending.append(target)

    def run_all(self) -> None:
        while self.pending:
            self.pending.pop(0)()


@pytest.fixture
def backup_rig(
    fabric_and_clock: tuple[Fabric, FakeClock],
) -> tuple[Client, FakeAgent, HeldSpawn]:
    fabric, clock = fabric_and_clock
    storage = FakeStorage()
    agent = FakeAgent(storage, clock, behaviour=snapshots_every_disk)
    spawn = HeldSpawn()
    service = BackupService(
        vms=fabric.names(),
        store=BackupStore(":memory:"),
        storage=storage,
        agent=agent,
        clock=clock,
        timings=lambda: BackupTimings(240.0, 20.0, 60.0),
        spawn=spawn,
        sleep=advancing_sleep(clock),
    )
    return Client(ControlApp(fabric, service)), agent, spawn


JOB_KEYS = {
    "job_id",
    "vm",
    "status",
    "error_code",
    "error_message",
    "detail",
    "subtasks",
    "seconds",
    "started_at",
    "ended_at",
    "task_id",
    "trigger",
    "policy",
}


def test_backup_is_accepted_then_followed(backup_rig: tuple[Client, FakeAgent, HeldSpawn]) -> None:
    client, _, spawn = backup_rig
    response = client.post("/control/v1/vms/vm1/backups")
    assert response.status_code == 202
    job = json.loads(response.data)
    assert set(job) == JOB_KEYS
    assert job["status"] == "InProgress" and job["vm"] == "vm1"
    assert [s["status"] for s in job["subtasks"]] == ["NotStarted", "NotStarted"]
    spawn.run_all()

    done = json.loads(client.get(f"/control/v1/jobs/{job['job_id']}").data)
    assert done["status"] == "Completed"
    assert done["error_code"] is None and done["seconds"] is not None
    listed = json.loads(client.get("/control/v1/jobs?vm=vm1").data)["jobs"]
    assert [j["job_id"] for j in listed] == [job["job_id"]]
    assert json.loads(client.get("/control/v1/jobs?vm=vm2").data) == {"jobs": []}
    assert len(json.loads(client.get("/control/v1/jobs").data)["jobs"]) == 1
    points = json.loads(client.get("/control/v1/vms/vm1/restore-points").data)["restore_points"]
    assert [p["job_id"] for p in points] == [job["job_id"]]
    assert set(points[0]) == {"id", "vm", "job_id", "created_at", "consistency", "disks"}
    assert points[0]["consistency"] == "FileSystemConsistent"


def test_refused_backup_is_still_a_202_job(
    backup_rig: tuple[Client, FakeAgent, HeldSpawn],
) -> None:
    client, agent, _ = backup_rig
    agent.ready = False
    job = json.loads(client.post("/control/v1/vms/vm2/backups").data)
    assert job["status"] == "Failed"
    assert job["error_code"] == "UserErrorGuestAgentStatusUnavailable"
    assert job["error_message"] == "VM Agent unable to communicate with Azure Backup"


def test_second_backup_while_one_runs(backup_rig: tuple[Client, FakeAgent, HeldSpawn]) -> None:
    client, _, _ = backup_rig
    assert client.post("/control/v1/vms/vm1/backups").status_code == 202
    second = client.post("/control/v1/vms/vm1/backups")
    assert second.status_code == 202
    assert json.loads(second.data)["error_code"] == "UserErrorBackupOperationInProgress"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", 202),
        (b"{}", 202),
        (b"  \n", 202),
        (b"{broken", 400),
        (b"[]", 400),
        (b'"now"', 400),
        (b'{"retain_until": "2027-01-01"}', 400),
        (b"\xff\xfe", 400),
    ],
)
def test_backup_request_bodies(
    backup_rig: tuple[Client, FakeAgent, HeldSpawn], body: bytes, expected: int
) -> None:
    client, _, _ = backup_rig
    response = client.post(
        "/control/v1/vms/vm1/backups", data=body, content_type="application/json"
    )
    assert response.status_code == expected
    if expected == 400:
        assert "error" in json.loads(response.data)


def test_storage_and_disks(backup_rig: tuple[Client, FakeAgent, HeldSpawn]) -> None:
    client, _, _ = backup_rig
    storage = json.loads(client.get("/control/v1/storage").data)
    assert storage == {"ready": True, "account_url": "http://10.199.0.3:10000/devstoreaccount1"}
    disks = json.loads(client.get("/control/v1/vms/vm2/disks").data)
    assert disks == {
        "disks": [
            {
                "name": "vm2-osdisk.vhd",
                "url": "http://10.199.0.3:10000/devstoreaccount1/vhds/vm2-osdisk.vhd",
                "size_bytes": 32212254720,
            }
        ],
        "ready": True,
    }


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/control/v1/vms/nobody/backups", 404),
        ("GET", "/control/v1/vms/nobody/disks", 404),
        ("GET", "/control/v1/vms/nobody/restore-points", 404),
        ("GET", "/control/v1/jobs?vm=nobody", 404),
        ("GET", "/control/v1/jobs/no-such-job", 404),
        ("GET", "/control/v1/jobs/a/b", 404),
        ("GET", "/control/v1/vms/vm1/backups", 405),
        ("POST", "/control/v1/jobs", 405),
        ("DELETE", "/control/v1/jobs/x", 405),
        ("POST", "/control/v1/storage", 405),
        ("PUT", "/control/v1/vms/vm1/restore-points", 405),
        ("POST", "/control/v1/vms/vm1/disks", 405),
    ],
)
def test_backup_errors_are_json_never_500(
    backup_rig: tuple[Client, FakeAgent, HeldSpawn], method: str, path: str, expected: int
) -> None:
    client, _, _ = backup_rig
    response = client.open(path, method=method)
    assert response.status_code == expected
    assert "error" in json.loads(response.data)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/control/v1/storage"),
        ("GET", "/control/v1/jobs"),
        ("GET", "/control/v1/jobs/x"),
        ("POST", "/control/v1/vms/vm1/backups"),
        ("GET", "/control/v1/vms/vm1/disks"),
        ("GET", "/control/v1/vms/vm1/restore-points"),
    ],
)
def test_backup_routes_without_a_backup_service(client: Client, method: str, path: str) -> None:
    response = client.open(path, method=method)
    assert response.status_code == 503
    assert "backup" in json.loads(response.data)["error"]


# --------------------------------------------------------------------------- uninstall


def test_uninstall_sets_the_handler_state_and_bumps(
    client: Client, fabric_and_clock: tuple[Fabric, FakeClock]
) -> None:
    guest = fabric_and_clock[0].guest("vm1")
    assert guest is not None
    guest.set_handler(HandlerSpec(HANDLER_NAME, "1.0.92.0", "http://f/manifest.xml", seq_no=4))
    before = int(guest.incarnation)
    response = client.post(f"/control/v1/vms/vm1/extensions/{HANDLER_NAME.lower()}/uninstall")
    assert response.status_code == 202
    assert json.loads(response.data) == {
        "vm": "vm1",
        "name": HANDLER_NAME,
        "incarnation": str(before + 1),
    }
    (handler,) = guest.handlers()
    assert handler.state == "uninstall" and handler.seq_no == 4


def test_uninstall_errors(client: Client) -> None:
    missing = client.post(f"/control/v1/vms/vm1/extensions/{HANDLER_NAME}/uninstall")
    assert missing.status_code == 404
    assert HANDLER_NAME in json.loads(missing.data)["error"]
    assert (
        client.post(f"/control/v1/vms/nobody/extensions/{HANDLER_NAME}/uninstall").status_code
        == 404
    )
    assert client.get(f"/control/v1/vms/vm1/extensions/{HANDLER_NAME}/uninstall").status_code == 405
    assert client.post("/control/v1/vms/vm1/extensions/x/remove").status_code == 404


def test_next_backup_enables_an_uninstalled_handler_again(
    fabric_and_clock: tuple[Fabric, FakeClock],
) -> None:
    """Through the real agent channel: after an uninstall, the next backup publishes the
    handler enabled again (the agent reinstalls it); nobody answers here, so the job
    ends in the snapshot sub-task timeout."""
    fabric, clock = fabric_and_clock
    guest = fabric.guest("vm1")
    assert guest is not None
    guest.record_status(status_bytes(), CHANNEL_HOSTPLUGIN)
    spawn = HeldSpawn()
    service = BackupService(
        vms=fabric.names(),
        store=BackupStore(":memory:"),
        storage=FakeStorage(),
        agent=FabricAgentChannel(fabric),
        clock=clock,
        timings=lambda: BackupTimings(240.0, 20.0, 60.0),
        spawn=spawn,
        sleep=advancing_sleep(clock),
    )
    client = Client(ControlApp(fabric, service))
    guest.set_handler(HandlerSpec(HANDLER_NAME, "1.0.92.0", "http://f/manifest.xml", seq_no=2))
    uninstall = f"/control/v1/vms/vm1/extensions/{HANDLER_NAME}/uninstall"
    assert client.post(uninstall).status_code == 202
    assert guest.handlers()[0].state == "uninstall"

    job = json.loads(client.post("/control/v1/vms/vm1/backups").data)
    assert job["status"] == "InProgress"
    spawn.run_all()
    (handler,) = guest.handlers()
    assert (handler.state, handler.seq_no) == ("enabled", 3)
    ended = json.loads(client.get(f"/control/v1/jobs/{job['job_id']}").data)
    assert ended["error_code"] == "GuestAgentSnapshotTaskStatusError"
    snapshot = ended["subtasks"][0]
    assert (snapshot["name"], snapshot["status"], snapshot["seconds"]) == (
        "Take Snapshot",
        "Failed",
        20.0,
    )
    assert snapshot["started_at"] and snapshot["ended_at"]


# --------------------------------------------------------------------------- power state


def test_power_state_is_the_platforms_and_starts_running(
    client: Client, fabric_and_clock: tuple[Fabric, FakeClock]
) -> None:
    assert json.loads(client.get("/control/v1/vms/vm1/power").data) == {
        "vm": "vm1",
        "power_state": "running",
    }
    response = client.put("/control/v1/vms/vm1/power", json={"power_state": "stopped"})
    assert response.status_code == 200
    assert json.loads(response.data)["power_state"] == "stopped"
    assert json.loads(client.get("/control/v1/vms/vm1").data)["power_state"] == "stopped"
    listed = {
        v["name"]: v["power_state"] for v in json.loads(client.get("/control/v1/vms").data)["vms"]
    }
    assert listed == {"vm1": "stopped", "vm2": "running"}


@pytest.mark.parametrize(
    ("method", "body", "status"),
    [
        ("PUT", {"power_state": "paused"}, 400),
        ("PUT", {"power_state": "starting"}, 400),  # transitions are the twin's own
        ("PUT", ["stopped"], 400),
        ("POST", {"power_state": "stopped"}, 405),
    ],
)
def test_bad_power_requests_are_refused(
    client: Client, method: str, body: object, status: int
) -> None:
    response = client.open("/control/v1/vms/vm1/power", method=method, json=body)
    assert response.status_code == status
    assert json.loads(client.get("/control/v1/vms/vm1/power").data)["power_state"] == "running"


def test_unknown_vm_power_is_404(client: Client) -> None:
    assert client.get("/control/v1/vms/vm9/power").status_code == 404


def test_power_states_outlive_a_fabric_restart(tmp_path: Path) -> None:
    path = tmp_path / "power.json"
    Fabric(make_roster(), power_file=path).power.set("vm2", "stopped")
    again = Fabric(make_roster(), power_file=path)
    assert (again.power.get("vm1"), again.power.get("vm2")) == ("running", "stopped")
    with pytest.raises(ValueError):
        again.power.set("vm1", "sleeping")
    with pytest.raises(KeyError):
        again.power.set("vm9", "stopped")


def test_an_unreadable_power_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "power.json"
    for text in ("{not json", '["stopped"]', '{"vm1": "exploded", "vm7": "stopped"}'):
        path.write_text(text)
        fabric = Fabric(make_roster(), power_file=path)
        assert fabric.power.get("vm1") == "running" and fabric.power.get("vm7") is None


# --------------------------------------------------------------------------- policies


def test_policies_are_set_and_vms_put_on_them(
    backup_rig: tuple[Client, FakeAgent, HeldSpawn],
) -> None:
    client, _, _ = backup_rig
    assert json.loads(client.get("/control/v1/policies").data)["policies"] == []
    response = client.put("/control/v1/policies/DailyPolicy", json={"schedule_run_time": "22:00"})
    assert response.status_code == 200
    assert json.loads(response.data)["schedule_run_time"] == "22:00"
    for vm in ("vm2", "vm1"):
        answer = client.put(f"/control/v1/vms/{vm}/policy", json={"policy": "DailyPolicy"})
        assert json.loads(answer.data) == {"vm": vm, "policy": "DailyPolicy"}
    view = json.loads(client.get("/control/v1/policies").data)
    assert set(view) == {"azure_now", "time_scale", "host_snapshot_slots", "policies"}
    (policy,) = view["policies"]
    assert set(policy) == {
        "name",
        "schedule_run_time",
        "vms",
        "next_run",
        "next_run_in_lab_seconds",
    }
    assert policy["vms"] == ["vm2", "vm1"]
    assert json.loads(client.get("/control/v1/vms/vm1/policy").data)["policy"] == "DailyPolicy"
    removed = client.delete("/control/v1/vms/vm1/policy")
    assert json.loads(removed.data) == {"vm": "vm1", "policy": None}


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("PUT", "/control/v1/policies/DailyPolicy", {"schedule_run_time": "25:00"}, 400),
        ("PUT", "/control/v1/policies/1bad", {"schedule_run_time": "22:00"}, 400),
        ("PUT", "/control/v1/policies/DailyPolicy", "22:00", 400),
        ("POST", "/control/v1/policies/DailyPolicy", {"schedule_run_time": "22:00"}, 405),
        ("PUT", "/control/v1/policies/a/b", {}, 404),
        ("PUT", "/control/v1/vms/vm1/policy", {"policy": "Nope"}, 404),
        ("PUT", "/control/v1/vms/vm1/policy", {"name": "DailyPolicy"}, 400),
        ("PUT", "/control/v1/vms/vm9/policy", {"policy": "DailyPolicy"}, 404),
        ("POST", "/control/v1/vms/vm1/policy", {"policy": "DailyPolicy"}, 405),
    ],
)
def test_bad_policy_requests_are_refused(
    backup_rig: tuple[Client, FakeAgent, HeldSpawn],
    method: str,
    path: str,
    body: object,
    status: int,
) -> None:
    client, _, _ = backup_rig
    assert client.open(path, method=method, json=body).status_code == status


def test_policies_need_the_backup_service(client: Client) -> None:
    assert client.get("/control/v1/policies").status_code == 503
    assert client.get("/control/v1/vms/vm1/policy").status_code == 503


# --------------------------------------------------------------------------- extension versions

VERSIONS = f"/control/v1/extensions/{HANDLER_NAME}/versions"


@pytest.fixture
def offered(fabric_and_clock: tuple[Fabric, FakeClock]) -> Fabric:
    fabric = fabric_and_clock[0]
    for version in ("1.0.91.0", "1.0.92.0"):
        fabric.artifacts.publish_extension(HANDLER_NAME, version, f"PK zip {version}".encode())
    return fabric


def _manifest_versions(fabric: Fabric) -> list[str]:
    manifest = fabric.artifacts.get(f"extensions/{HANDLER_NAME}/manifest.xml")
    assert manifest is not None
    root = ElementTree.fromstring(manifest.data)
    return [v.text or "" for v in root.iter("Version")]


def test_a_broken_newer_version_is_offered_and_can_be_withdrawn(
    client: Client, offered: Fabric
) -> None:
    listed = json.loads(client.get(VERSIONS).data)
    assert [(v["version"], v["package"]) for v in listed["versions"]] == [
        ("1.0.91.0", "ok"),
        ("1.0.92.0", "ok"),
    ]
    response = client.post(VERSIONS, json={"version": "1.0.93.0", "package": "corrupt"})
    assert response.status_code == 201
    assert json.loads(response.data)["package"] == "corrupt"
    assert _manifest_versions(offered) == ["1.0.91.0", "1.0.92.0", "1.0.93.0"]
    assert offered.artifacts.latest_version(HANDLER_NAME) == "1.0.93.0"
    damaged = offered.artifacts.get(f"extensions/{HANDLER_NAME}/{HANDLER_NAME}__1.0.93.0.zip")
    assert damaged is not None and damaged.data == b"PK zip 1.0.92.0"[:7]  # cut short

    withdrawn = client.delete(f"{VERSIONS}/1.0.93.0")
    assert withdrawn.status_code == 200
    assert _manifest_versions(offered) == ["1.0.91.0", "1.0.92.0"]
    assert offered.artifacts.get(f"extensions/{HANDLER_NAME}/{HANDLER_NAME}__1.0.93.0.zip") is None
    assert offered.artifacts.latest_version(HANDLER_NAME) == "1.0.92.0"


def test_a_missing_package_is_listed_but_served_nowhere(client: Client, offered: Fabric) -> None:
    assert (
        client.post(VERSIONS, json={"version": "1.0.93.0", "package": "missing"}).status_code == 201
    )
    assert "1.0.93.0" in _manifest_versions(offered)
    assert offered.artifacts.get(f"extensions/{HANDLER_NAME}/{HANDLER_NAME}__1.0.93.0.zip") is None


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", VERSIONS, {"version": "1.0.92.0", "package": "corrupt"}, 409),  # already there
        ("POST", VERSIONS, {"version": "1.0.93.0", "package": "ok"}, 400),
        ("POST", VERSIONS, {"version": "one", "package": "corrupt"}, 400),
        ("POST", VERSIONS, {"version": "1.0.93.0"}, 400),
        ("PUT", VERSIONS, {}, 405),
        ("DELETE", f"{VERSIONS}/1.0.99.0", None, 404),
        ("GET", f"{VERSIONS}/1.0.92.0", None, 405),
        ("GET", "/control/v1/extensions/Some.Other.Ext/versions", None, 404),
    ],
)
def test_bad_version_requests_are_refused(
    client: Client, offered: Fabric, method: str, path: str, body: object, status: int
) -> None:
    assert client.open(path, method=method, json=body).status_code == status
    assert _manifest_versions(offered) == ["1.0.91.0", "1.0.92.0"]


def test_the_last_good_package_cannot_be_withdrawn(client: Client, offered: Fabric) -> None:
    assert client.delete(f"{VERSIONS}/1.0.91.0").status_code == 200
    assert client.delete(f"{VERSIONS}/1.0.92.0").status_code == 409
    assert _manifest_versions(offered) == ["1.0.92.0"]
