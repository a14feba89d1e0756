"""The platform's power record: ARM outcomes, halts the host saw, and a stale view."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from werkzeug.test import Client

from lab.platform.control import ControlApp
from lab.platform.guest_state import Fabric
from lab.platform.power_states import PowerStates
from tests.unit.fabric_samples import make_fabric, make_roster


def test_a_halt_the_host_saw_stops_the_vm() -> None:
    power = PowerStates(["vm1", "vm2"])
    outcome = power.observe_halt("vm1")
    assert (outcome.power_state, outcome.taken) == ("stopped", True)
    assert (power.get("vm1"), power.get("vm2")) == ("stopped", "running")
    assert power.observe_halt("vm1").taken  # a second report changes nothing


def test_a_stale_view_drops_the_hosts_reports() -> None:
    power = PowerStates(["vm1"])
    power.set_stale("vm1", True)
    outcome = power.observe_halt("vm1")
    assert (outcome.power_state, outcome.taken) == ("running", False)
    assert power.get("vm1") == "running" and power.is_stale("vm1")


def test_a_platform_power_operation_refreshes_a_stale_view() -> None:
    power = PowerStates(["vm1"])
    power.set_stale("vm1", True)
    power.set("vm1", "stopped")  # the twin's power off
    assert not power.is_stale("vm1")
    power.set("vm1", "running")  # and its start
    assert power.observe_halt("vm1").taken and power.get("vm1") == "stopped"


def test_a_deallocated_vm_stays_deallocated_when_its_container_ends() -> None:
    power = PowerStates(["vm1"])
    power.set("vm1", "deallocated")  # the twin's deallocate stopped the container
    outcome = power.observe_halt("vm1")  # the host sees the container end
    assert (outcome.power_state, outcome.taken) == ("deallocated", True)
    assert power.get("vm1") == "deallocated"
    power.set("vm1", "running")  # start
    assert power.get("vm1") == "running"


def test_the_control_api_records_deallocated(client: Client) -> None:
    answer = client.put("/control/v1/vms/vm1/power", json={"power_state": "deallocated"})
    assert answer.status_code == 200
    assert answer.get_json() == {"vm": "vm1", "power_state": "deallocated"}


def test_unknown_vms_are_refused() -> None:
    power = PowerStates(["vm1"])
    for call in (
        lambda: power.observe_halt("vm9"),
        lambda: power.set_stale("vm9", True),
        lambda: power.is_stale("vm9"),
    ):
        with pytest.raises(KeyError):
            call()


def test_a_halt_outlives_a_fabric_restart_but_staleness_does_not(tmp_path: Path) -> None:
    path = tmp_path / "power.json"
    first = PowerStates(["vm1", "vm2"], path)
    first.observe_halt("vm1")
    first.set_stale("vm2", True)
    again = PowerStates(["vm1", "vm2"], path)
    assert (again.get("vm1"), again.get("vm2")) == ("stopped", "running")
    assert not again.is_stale("vm2")
    assert json.loads(path.read_text()) == {"vm1": "stopped", "vm2": "running"}


# --------------------------------------------------------------------------- control API


@pytest.fixture
def fabric() -> Fabric:
    return make_fabric()[0]


@pytest.fixture
def client(fabric: Fabric) -> Client:
    return Client(ControlApp(fabric))


def _json(response: object) -> dict[str, object]:
    data = json.loads(response.get_data(as_text=True))  # type: ignore[attr-defined]
    assert isinstance(data, dict)
    return data


def test_the_hosts_halt_report_shows_in_every_view(client: Client) -> None:
    response = client.post("/control/v1/vms/vm1/power/halted")
    assert response.status_code == 200
    assert _json(response) == {"vm": "vm1", "power_state": "stopped", "taken": True}
    assert _json(client.get("/control/v1/vms/vm1"))["power_state"] == "stopped"
    assert _json(client.get("/control/v1/vms/vm1/power"))["power_state"] == "stopped"


def test_a_stale_view_through_the_control_api(client: Client) -> None:
    assert _json(client.get("/control/v1/vms/vm1/power/view")) == {"vm": "vm1", "stale": False}
    put = client.put("/control/v1/vms/vm1/power/view", json={"stale": True})
    assert _json(put) == {"vm": "vm1", "stale": True}
    halted = _json(client.post("/control/v1/vms/vm1/power/halted"))
    assert (halted["power_state"], halted["taken"]) == ("running", False)
    client.put("/control/v1/vms/vm1/power", json={"power_state": "stopped"})
    assert _json(client.get("/control/v1/vms/vm1/power/view"))["stale"] is False


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "halted", None, 405),
        ("PUT", "view", {"stale": "yes"}, 400),
        ("PUT", "view", {}, 400),
        ("POST", "view", {"stale": True}, 405),
    ],
)
def test_bad_power_requests_are_refused(
    client: Client, method: str, path: str, body: object, status: int
) -> None:
    response = client.open(f"/control/v1/vms/vm1/power/{path}", method=method, json=body)
    assert response.status_code == status
    assert _json(client.get("/control/v1/vms/vm1/power")) == {
        "vm": "vm1",
        "power_state": "running",
    }


def test_unknown_vm_is_404(client: Client) -> None:
    assert client.post("/control/v1/vms/vm9/power/halted").status_code == 404
    assert client.get("/control/v1/vms/vm9/power/view").status_code == 404


def test_a_fresh_fabric_has_every_vm_running_and_fresh() -> None:
    fabric = Fabric(make_roster())
    assert all(fabric.power.get(n) == "running" for n in fabric.names())
    assert not any(fabric.power.is_stale(n) for n in fabric.names())
