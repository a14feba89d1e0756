"""The control API the CLI and the ARM twin read."""

from __future__ import annotations

import json

import pytest
from fabric_samples import FakeClock, make_fabric, make_roster, status_bytes
from werkzeug.test import Client

from lab.platform.control import ControlApp
from lab.platform.guest_state import CHANNEL_HOSTPLUGIN, Fabric
from lab.platform.roster import Roster

VM_KEYS = {"name", "ip", "incarnation", "agent", "health", "os", "extensions"}
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
