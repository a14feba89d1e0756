"""The ARM twin (lab/platform/arm/).

In-process tests drive the WSGI app with Werkzeug's test client (auth, routing, bad
input, document shapes). End-to-end tests serve it over real TLS on 127.0.0.1 and drive
it with the unmodified ``azure-mgmt-compute`` client, so a shape the SDK cannot read or
an LRO it cannot follow fails here. The fabric and Docker are fakes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.mgmt.compute import ComputeManagementClient
from werkzeug.serving import make_server
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from lab.azure_sdk import StaticTokenCredential, compute_client
from lab.platform.arm import main as twin_main
from lab.platform.arm.app import ArmTwin
from lab.platform.arm.compute_documents import (
    AGENT_NEVER_REPORTED_MESSAGE,
    AGENT_STALE_MESSAGE,
    vm_id,
)
from lab.platform.arm.fabric import (
    AgentReport,
    ExtensionReport,
    FabricError,
    FabricVm,
    HttpFabricClient,
    OsReport,
    parse_fabric_vm,
)
from lab.platform.arm.main import ConfigError, TwinConfig, build_server, tls_context
from lab.platform.arm.power import DockerPower, PowerAction, PowerError
from lab.platform.control_extensions import ExtensionRoutes
from lab.platform.roster import GuestEntry, Roster
from lab.provision.tls import write_lab_tls

TOKEN = "lab-token-0123456789"
SUB = "11111111-2222-3333-4444-555555555555"
RG = "snaplab-unit"
API = "api-version=2024-07-01"
VMS = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SNAPSHOT_EXT = "Microsoft.Azure.RecoveryServices.VMSnapshotLinux"

ROSTER = Roster(
    lab="unit",
    subnet="10.77.0.0/24",
    fabric_ip="10.77.0.2",
    storage_ip="10.77.0.3",
    guests=(
        GuestEntry("vm1", "10.77.0.11", "02:42:0a:4d:00:0b", "2.7.3.0", "snaplab-unit-vm1"),
        GuestEntry("vm2", "10.77.0.12", "02:42:0a:4d:00:0c", "2.2.47", "snaplab-unit-vm2"),
        GuestEntry("vm3", "10.77.0.13", "02:42:0a:4d:00:0d", "2.7.3.0", "snaplab-unit-vm3"),
    ),
    subscription_id=SUB,
    resource_group=RG,
    location="snaplab-local",
)

HEALTHY = FabricVm(
    name="vm1",
    agent=AgentReport(
        ready=True,
        version="2.7.3.0",
        message="Guest Agent is running",
        last_report="2026-01-02T03:04:05+00:00",
    ),
    os=OsReport(computer_name="vm1", name="debian", version="12"),
    extensions=(
        ExtensionReport(
            name=SNAPSHOT_EXT,
            version="1.0.91.0",
            handler_status="Ready",
            status="success",
            code="0",
            message="snapshot taken",
        ),
    ),
)
STALE = FabricVm(
    name="vm2",
    agent=AgentReport(
        ready=False,
        version="2.2.47",
        message="agent status is stale",
        last_report="2026-01-02T02:00:00+00:00",
    ),
    os=OsReport(computer_name="vm2", name="debian", version="12"),
    extensions=(
        ExtensionReport(
            name=SNAPSHOT_EXT,
            version="1.0.91.0",
            handler_status="NotReady",
            status="error",
            code="76",
            message="FailedRetryableSnapshotFailedNoNetwork",
        ),
    ),
)


# --------------------------------------------------------------------------- fakes


@dataclass
class FakeFabric:
    """The fabric's control API as data; ``down`` makes every call fail.

    ``uninstall_extension`` plays the fabric and the agent at once: the handler leaves
    the reports (the agent removed it) unless ``agent_stuck``; a handler listed in
    ``not_in_goal_state`` gets the control API's 404.
    """

    roster_: Roster = ROSTER
    vms: dict[str, FabricVm] = field(default_factory=lambda: {"vm1": HEALTHY, "vm2": STALE})
    down: bool = False
    agent_stuck: bool = False
    not_in_goal_state: set[str] = field(default_factory=set)
    uninstalls: list[tuple[str, str]] = field(default_factory=list)
    # The platform's power state, as the fabric keeps it ("up" starts every VM).
    power: dict[str, str] = field(
        default_factory=lambda: {g.name: "running" for g in ROSTER.guests}
    )
    refuse_power: bool = False

    def roster(self) -> Roster:
        if self.down:
            raise FabricError("connection refused")
        return self.roster_

    def vm(self, name: str) -> FabricVm | None:
        if self.down:
            raise FabricError("connection refused")
        report = self.vms.get(name)
        return replace(report, power_state=self.power.get(name)) if report else None

    def set_power_state(self, vm: str, state: str) -> None:
        if self.down or self.refuse_power:
            raise FabricError("connection refused")
        self.power[vm] = state

    def report_halt(self, vm: str) -> bool:
        if self.down:
            raise FabricError("connection refused")
        self.power[vm] = "stopped"
        return True

    def goal_state_handlers(self, vm: str) -> tuple[object, ...]:
        """No handler in any goal state: the extensions shown are the agent's reports."""
        if self.down:
            raise FabricError("connection refused")
        return ()

    def uninstall_extension(self, vm: str, handler: str) -> str | None:
        if self.down:
            raise FabricError("connection refused")
        self.uninstalls.append((vm, handler))
        report = self.vms.get(vm)
        if report is None or handler in self.not_in_goal_state:
            return None
        if not self.agent_stuck:
            kept = tuple(e for e in report.extensions if e.name != handler)
            self.vms[vm] = replace(report, extensions=kept)
        return "7"


@dataclass
class FakePower:
    """Containers as a dict of Docker states; ``hold`` keeps operations running until set.

    The twin never reads these: they only show what the host did to each guest."""

    containers: dict[str, str] = field(
        default_factory=lambda: {g.container: "running" for g in ROSTER.guests}
    )
    calls: list[tuple[str, PowerAction]] = field(default_factory=list)
    hold: threading.Event | None = None
    fail: bool = False

    def act(self, container: str, action: PowerAction) -> None:
        self.calls.append((container, action))
        if self.hold is not None:
            self.hold.wait(timeout=10)
        if self.fail:
            raise PowerError(f"docker could not {action.value} {container}: boom")
        self.containers[container] = "exited" if action is PowerAction.POWER_OFF else "running"


@pytest.fixture
def fabric() -> FakeFabric:
    return FakeFabric()


@pytest.fixture
def power() -> FakePower:
    return FakePower()


@pytest.fixture
def app(fabric: FakeFabric, power: FakePower) -> ArmTwin:
    return ArmTwin(fabric, power, TOKEN)


@pytest.fixture
def client(app: ArmTwin) -> Client:
    return Client(app)


def _json(response: object) -> dict[str, object]:
    data = json.loads(response.get_data(as_text=True))  # type: ignore[attr-defined]
    assert isinstance(data, dict)
    return data


def _error_code(response: object) -> str:
    error = _json(response)["error"]
    assert isinstance(error, dict)
    assert isinstance(error["message"], str) and error["message"]
    return str(error["code"])


def _wait_for(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


# --------------------------------------------------------------------------- auth and input


def test_missing_authorization_is_401(client: Client) -> None:
    response = client.get(f"{VMS}?{API}")
    assert response.status_code == 401
    assert _error_code(response) == "AuthenticationFailed"


@pytest.mark.parametrize(
    "header",
    [f"Bearer {TOKEN}x", "Bearer wrong", f"Basic {TOKEN}", "Bearer ", TOKEN, "Bearer é☃"],
)
def test_wrong_credentials_are_401(client: Client, header: str) -> None:
    response = client.get(f"{VMS}?{API}", headers={"Authorization": header})
    assert response.status_code == 401
    assert _error_code(response) in {"AuthenticationFailed", "InvalidAuthenticationToken"}


def test_bearer_scheme_is_case_insensitive(client: Client) -> None:
    response = client.get(f"{VMS}?{API}", headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200


def test_api_version_is_required(client: Client) -> None:
    response = client.get(VMS, headers=AUTH)
    assert response.status_code == 400
    assert _error_code(response) == "MissingApiVersionParameter"


def test_malformed_api_version_is_400(client: Client) -> None:
    response = client.get(f"{VMS}?api-version=latest", headers=AUTH)
    assert response.status_code == 400
    assert _error_code(response) == "InvalidApiVersionParameter"


@pytest.mark.parametrize(
    ("path", "code"),
    [
        (
            f"/subscriptions/nope/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines",
            "SubscriptionNotFound",
        ),
        (
            f"/subscriptions/{SUB}/resourceGroups/other/providers/Microsoft.Compute/virtualMachines",
            "ResourceGroupNotFound",
        ),
        (f"{VMS}/vm9", "ResourceNotFound"),
        (f"{VMS}/vm9/instanceView", "ResourceNotFound"),
        (
            f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/snaplab-local/operations/x",
            "NotFound",
        ),
        (
            f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/elsewhere/operations/x",
            "NotFound",
        ),
        ("/", "NotFound"),
        (f"/subscriptions/{SUB}/nothing", "NotFound"),  # the subscription itself is served
        (f"{VMS}/vm1/extensions/Nope", "ResourceNotFound"),
        (f"{VMS}/vm1/extensions/{SNAPSHOT_EXT}", "ResourceNotFound"),  # the handler, not the name
        (f"{VMS}/vm9/extensions", "ResourceNotFound"),
        (f"{VMS}/vm9/extensions/VMSnapshotLinux", "ResourceNotFound"),
        (f"{VMS}/vm1/extensions/VMSnapshotLinux/more", "NotFound"),
        (f"{VMS}/vm1/instanceView/more", "NotFound"),
    ],
)
def test_unknown_things_are_404_in_arm_shape(client: Client, path: str, code: str) -> None:
    response = client.get(f"{path}?{API}", headers=AUTH)
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    assert _error_code(response) == code


def test_post_to_unknown_vm_is_404(client: Client, power: FakePower) -> None:
    response = client.post(f"{VMS}/vm9/powerOff?{API}", headers=AUTH)
    assert response.status_code == 404
    assert power.calls == []


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", f"{VMS}/vm1/powerOff", "POST"),
        ("DELETE", f"{VMS}/vm1", "GET, HEAD"),
        ("PUT", f"{VMS}/vm1", "GET, HEAD"),
        ("POST", f"{VMS}/vm1/instanceView", "GET, HEAD"),
        ("POST", VMS, "GET, HEAD"),
        ("DELETE", f"{VMS}/vm1/extensions", "GET, HEAD"),
        ("POST", f"{VMS}/vm1/extensions/VMSnapshotLinux", "DELETE, GET, HEAD, PUT"),
        ("PATCH", f"{VMS}/vm1/extensions/VMSnapshotLinux", "DELETE, GET, HEAD, PUT"),
    ],
)
def test_wrong_method_is_405(client: Client, method: str, path: str, allowed: str) -> None:
    response = client.open(f"{path}?{API}", method=method, headers=AUTH)
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed
    assert _error_code(response) == "MethodNotAllowed"


@pytest.mark.parametrize(
    "path",
    [
        f"{VMS}/%00",
        f"{VMS}/%2F..%2F",
        f"{VMS}/vm1%20",
        f"{VMS}/{'x' * 5000}",
        f"{VMS}/vm1?api-version=2024-07-01&$expand=%ff%fe",
        f"{VMS}/vm1?api-version=2024-07-01&api-version=2024-07-01&$expand=",
        f"{VMS}/vm1?api-version=%ff",
        f"{VMS}//vm1?{API}",
        "/subscriptions/%ff/resourceGroups/%00/providers/Microsoft.Compute/virtualMachines",
    ],
)
def test_garbage_never_makes_a_500(client: Client, path: str) -> None:
    full = path if "?" in path else f"{path}?{API}"
    response = client.get(full, headers=AUTH)
    assert 200 <= response.status_code < 500
    _json(response)


def test_fabric_down_is_an_arm_shaped_502(client: Client, fabric: FakeFabric) -> None:
    fabric.down = True
    response = client.get(f"{VMS}/vm1/instanceView?{API}", headers=AUTH)
    assert response.status_code == 502
    assert _error_code(response) == "BadGateway"


def test_names_are_case_insensitive_like_azure(client: Client) -> None:
    path = f"/subscriptions/{SUB.upper()}/resourceGroups/{RG.upper()}"
    response = client.get(
        f"{path}/providers/Microsoft.Compute/virtualMachines/VM1?{API}", headers=AUTH
    )
    assert response.status_code == 200
    assert _json(response)["name"] == "vm1"


# --------------------------------------------------------------------------- documents


def test_vm_document_shape(client: Client) -> None:
    doc = _json(client.get(f"{VMS}/vm1?{API}", headers=AUTH))
    assert doc["id"] == f"{VMS}/vm1"
    assert doc["type"] == "Microsoft.Compute/virtualMachines"
    assert doc["location"] == "snaplab-local"
    props = doc["properties"]
    assert isinstance(props, dict)
    assert props["vmId"] == vm_id("unit", "vm1")
    assert props["hardwareProfile"] == {"vmSize": "Standard_B1s"}  # 1 vCPU, 1 GiB
    assert props["osProfile"]["linuxConfiguration"]["provisionVMAgent"] is True
    assert props["provisioningState"] == "Succeeded"
    assert "instanceView" not in props


def test_vm_id_is_stable_and_distinct() -> None:
    assert vm_id("unit", "vm1") == vm_id("unit", "vm1")
    assert len({vm_id("unit", "vm1"), vm_id("unit", "vm2"), vm_id("other", "vm1")}) == 3


def test_agent_never_reported(client: Client) -> None:
    view = _json(client.get(f"{VMS}/vm3/instanceView?{API}", headers=AUTH))
    agent = view["vmAgent"]
    assert isinstance(agent, dict)
    assert agent["vmAgentVersion"] == "Unknown"
    assert agent["statuses"][0]["message"] == AGENT_NEVER_REPORTED_MESSAGE
    assert "computerName" not in view
    assert view["extensions"] == []


def test_power_state_is_the_platforms(client: Client, fabric: FakeFabric) -> None:
    fabric.power["vm1"] = "stopped"
    view = _json(client.get(f"{VMS}/vm1/instanceView?{API}", headers=AUTH))
    assert view["statuses"][1] == {  # type: ignore[index]
        "code": "PowerState/stopped",
        "level": "Info",
        "displayStatus": "VM stopped",
    }


def test_the_power_state_is_the_fabrics_record_not_the_containers(
    client: Client, fabric: FakeFabric, power: FakePower
) -> None:
    """The twin never reads Docker: an exited container shows as stopped only once the
    host's report reached the fabric (lab.platform.host_power, tested on its own)."""
    power.containers["snaplab-unit-vm2"] = "exited"
    view = _json(client.get(f"{VMS}/vm2/instanceView?{API}", headers=AUTH))
    assert view["statuses"][1]["code"] == "PowerState/running"  # type: ignore[index]
    assert fabric.report_halt("vm2") is True
    view = _json(client.get(f"{VMS}/vm2/instanceView?{API}", headers=AUTH))
    assert view["statuses"][1] == {  # type: ignore[index]
        "code": "PowerState/stopped",
        "level": "Info",
        "displayStatus": "VM stopped",
    }


def test_a_power_state_the_fabric_does_not_know_is_unknown(
    client: Client, fabric: FakeFabric
) -> None:
    del fabric.power["vm1"]
    view = _json(client.get(f"{VMS}/vm1/instanceView?{API}", headers=AUTH))
    assert view["statuses"][1]["code"] == "PowerState/unknown"  # type: ignore[index]


# --------------------------------------------------------------------------- operations


def _location_of(response: object) -> tuple[str, str]:
    headers = response.headers  # type: ignore[attr-defined]
    assert headers["Retry-After"] == "1"
    async_url, location = headers["Azure-AsyncOperation"], headers["Location"]
    prefix = "http://localhost"
    assert async_url.startswith(prefix) and location.startswith(prefix)
    return async_url[len(prefix) :], location[len(prefix) :]


def test_power_off_is_a_long_running_operation(
    client: Client, power: FakePower, fabric: FakeFabric
) -> None:
    power.hold = threading.Event()
    response = client.post(f"{VMS}/vm1/powerOff?{API}", headers=AUTH)
    assert response.status_code == 202
    async_path, location_path = _location_of(response)

    running = client.get(async_path, headers=AUTH)
    assert _json(running)["status"] == "InProgress"
    assert running.headers["Retry-After"] == "1"
    assert client.get(location_path, headers=AUTH).status_code == 202
    view = _json(client.get(f"{VMS}/vm1/instanceView?{API}", headers=AUTH))
    assert view["statuses"][1]["code"] == "PowerState/stopping"  # type: ignore[index]
    assert view["statuses"][0]["code"] == "ProvisioningState/updating"  # type: ignore[index]
    second = client.post(f"{VMS}/vm1/start?{API}", headers=AUTH)
    assert second.status_code == 409
    assert _error_code(second) == "OperationNotAllowed"

    power.hold.set()
    _wait_for(lambda: _json(client.get(async_path, headers=AUTH))["status"] != "InProgress")
    done = _json(client.get(async_path, headers=AUTH))
    assert done["status"] == "Succeeded"
    assert {"name", "startTime", "endTime"} <= done.keys()
    assert client.get(location_path, headers=AUTH).status_code == 200
    assert power.calls == [("snaplab-unit-vm1", PowerAction.POWER_OFF)]
    assert fabric.power["vm1"] == "stopped"


def test_power_operation_fails_when_the_fabric_cannot_record_it(
    client: Client, fabric: FakeFabric
) -> None:
    fabric.refuse_power = True
    async_path, _ = _location_of(client.post(f"{VMS}/vm1/powerOff?{API}", headers=AUTH))
    _wait_for(lambda: _json(client.get(async_path, headers=AUTH))["status"] != "InProgress")
    done = _json(client.get(async_path, headers=AUTH))
    assert done["status"] == "Failed"
    assert done["error"]["code"] == "BadGateway"  # type: ignore[index]
    assert fabric.power["vm1"] == "running"


def test_failed_operation_reports_failed(
    client: Client, power: FakePower, fabric: FakeFabric
) -> None:
    power.fail = True
    async_path, location_path = _location_of(client.post(f"{VMS}/vm1/restart?{API}", headers=AUTH))
    _wait_for(lambda: _json(client.get(async_path, headers=AUTH))["status"] != "InProgress")
    done = _json(client.get(async_path, headers=AUTH))
    assert done["status"] == "Failed"
    assert "boom" in done["error"]["message"]  # type: ignore[index]
    assert client.get(location_path, headers=AUTH).status_code == 409
    assert fabric.power["vm1"] == "running"  # nothing happened to the VM


def test_operations_need_auth(client: Client) -> None:
    async_path, _ = _location_of(client.post(f"{VMS}/vm1/start?{API}", headers=AUTH))
    assert client.get(async_path).status_code == 401


# --------------------------------------------------------------------------- extensions

EXT = f"{VMS}/vm1/extensions"


def _done(client: Client, async_path: str) -> dict[str, object]:
    _wait_for(lambda: _json(client.get(async_path, headers=AUTH))["status"] != "InProgress")
    return _json(client.get(async_path, headers=AUTH))


def test_extension_list_shows_what_the_agent_reports(client: Client) -> None:
    doc = _json(client.get(f"{EXT}?{API}", headers=AUTH))
    assert doc == {
        "value": [
            {
                "id": f"{VMS}/vm1/extensions/VMSnapshotLinux",
                "name": "VMSnapshotLinux",
                "type": "Microsoft.Compute/virtualMachines/extensions",
                "location": "snaplab-local",
                "properties": {
                    "publisher": "Microsoft.Azure.RecoveryServices",
                    "type": "VMSnapshotLinux",
                    "typeHandlerVersion": "1.0",
                    "autoUpgradeMinorVersion": True,
                    "provisioningState": "Succeeded",
                },
            }
        ]
    }
    assert _json(client.get(f"{VMS}/vm3/extensions?{API}", headers=AUTH)) == {"value": []}


def test_extension_get_with_instance_view(client: Client) -> None:
    doc = _json(client.get(f"{VMS}/vm2/extensions/vmsnapshotlinux?{API}", headers=AUTH))
    assert doc["name"] == "VMSnapshotLinux"
    props = doc["properties"]
    assert isinstance(props, dict)
    assert props["provisioningState"] == "Failed"
    assert "instanceView" not in props
    expanded = _json(
        client.get(f"{VMS}/vm2/extensions/VMSnapshotLinux?{API}&$expand=instanceView", headers=AUTH)
    )
    assert expanded["properties"]["instanceView"] == {  # type: ignore[index]
        "name": "VMSnapshotLinux",
        "type": SNAPSHOT_EXT,
        "typeHandlerVersion": "1.0.91.0",
        "statuses": [
            {
                "code": "ProvisioningState/failed/76",
                "level": "Error",
                "displayStatus": "Provisioning failed",
                "message": "FailedRetryableSnapshotFailedNoNetwork",
            }
        ],
    }


def test_extension_delete_uninstalls_through_the_fabric(client: Client, fabric: FakeFabric) -> None:
    response = client.delete(f"{EXT}/VMSnapshotLinux?{API}", headers=AUTH)
    assert response.status_code == 202
    async_path, location_path = _location_of(response)
    assert _done(client, async_path)["status"] == "Succeeded"
    assert client.get(location_path, headers=AUTH).status_code == 204  # a delete has no body
    assert fabric.uninstalls == [("vm1", SNAPSHOT_EXT)]
    assert _json(client.get(f"{EXT}?{API}", headers=AUTH)) == {"value": []}
    gone = client.get(f"{EXT}/VMSnapshotLinux?{API}", headers=AUTH)
    assert gone.status_code == 404 and _error_code(gone) == "ResourceNotFound"
    again = client.delete(f"{EXT}/VMSnapshotLinux?{API}", headers=AUTH)
    assert again.status_code == 204  # ARM deletes are idempotent
    assert fabric.uninstalls == [("vm1", SNAPSHOT_EXT)]


def test_extension_delete_waits_for_the_agent(fabric: FakeFabric, power: FakePower) -> None:
    """While the agent has not removed it: Deleting, VM Updating, other operations 409;
    when it never does, Azure's extension timeout."""
    fabric.agent_stuck = True
    client = Client(
        ArmTwin(fabric, power, TOKEN, extension_timeout=lambda: 0.5, extension_poll_seconds=0.02)
    )
    async_path, location_path = _location_of(
        client.delete(f"{EXT}/VMSnapshotLinux?{API}", headers=AUTH)
    )
    ext = _json(client.get(f"{EXT}/VMSnapshotLinux?{API}", headers=AUTH))
    assert ext["properties"]["provisioningState"] == "Deleting"  # type: ignore[index]
    view = _json(client.get(f"{VMS}/vm1/instanceView?{API}", headers=AUTH))
    assert view["statuses"][0]["code"] == "ProvisioningState/updating"  # type: ignore[index]
    assert view["statuses"][1]["code"] == "PowerState/running"  # type: ignore[index]
    busy = client.post(f"{VMS}/vm1/powerOff?{API}", headers=AUTH)
    assert busy.status_code == 409 and _error_code(busy) == "OperationNotAllowed"
    assert power.calls == []
    done = _done(client, async_path)
    assert done["status"] == "Failed"
    assert done["error"]["code"] == "VMExtensionProvisioningTimeout"  # type: ignore[index]
    assert "VMSnapshotLinux" in done["error"]["message"]  # type: ignore[index]
    monitor = client.get(location_path, headers=AUTH)
    assert monitor.status_code == 409 and _error_code(monitor) == "VMExtensionProvisioningTimeout"


def test_extension_delete_fails_when_the_goal_state_lacks_it(
    client: Client, fabric: FakeFabric
) -> None:
    fabric.not_in_goal_state.add(SNAPSHOT_EXT)
    async_path, _ = _location_of(client.delete(f"{EXT}/VMSnapshotLinux?{API}", headers=AUTH))
    done = _done(client, async_path)
    assert done["status"] == "Failed"
    assert done["error"]["code"] == "ResourceNotFound"  # type: ignore[index]


def test_extension_delete_of_nothing_is_204(client: Client, fabric: FakeFabric) -> None:
    for path in (f"{EXT}/Nope", f"{VMS}/vm3/extensions/VMSnapshotLinux"):
        assert client.delete(f"{path}?{API}", headers=AUTH).status_code == 204
    assert fabric.uninstalls == []
    missing_vm = client.delete(f"{VMS}/vm9/extensions/VMSnapshotLinux?{API}", headers=AUTH)
    assert missing_vm.status_code == 404


def test_extension_calls_with_the_fabric_down_are_502(client: Client, fabric: FakeFabric) -> None:
    fabric.down = True
    for method in ("GET", "DELETE"):
        response = client.open(f"{EXT}/VMSnapshotLinux?{API}", method=method, headers=AUTH)
        assert response.status_code == 502 and _error_code(response) == "BadGateway"


# --------------------------------------------------------------------------- Docker backend


class _FakeContainer:
    """The docker-py container surface DockerPower may use, and nothing more."""

    def __init__(self, status: str) -> None:
        self.status = status
        self.calls: list[tuple[str, int | None]] = []

    def stop(self, timeout: int) -> None:
        self.calls.append(("stop", timeout))
        self.status = "exited"

    def start(self) -> None:
        self.calls.append(("start", None))
        self.status = "running"

    def restart(self, timeout: int) -> None:
        self.calls.append(("restart", timeout))
        self.status = "running"


class _FakeContainers:
    def __init__(self, known: dict[str, _FakeContainer]) -> None:
        self.known = known

    def get(self, name: str) -> _FakeContainer:
        if name not in self.known:
            raise LookupError(f"404 Client Error: No such container: {name}")
        return self.known[name]


class _FakeDockerClient:
    def __init__(self, known: dict[str, _FakeContainer]) -> None:
        self.containers = _FakeContainers(known)


def test_docker_power_acts_and_translates_errors() -> None:
    box = _FakeContainer("running")
    opened: list[str] = []
    power = DockerPower(
        stop_timeout=7,
        client_factory=lambda: _FakeDockerClient({"c": box}),
        open_guest=lambda _client, name: opened.append(name),
    )
    power.act("c", PowerAction.POWER_OFF)
    power.act("c", PowerAction.START)
    power.act("c", PowerAction.RESTART)
    assert box.calls == [("stop", 7), ("start", None), ("restart", 7)]
    assert opened == ["c", "c"]  # a (re)started guest gets its cgroups opened
    with pytest.raises(PowerError, match="missing"):
        power.act("missing", PowerAction.START)


def test_docker_power_without_an_engine_is_an_error_not_a_crash() -> None:
    def no_engine() -> object:
        raise ConnectionError("Error while fetching server API version")

    power = DockerPower(client_factory=no_engine)
    with pytest.raises(PowerError):
        power.act("c", PowerAction.POWER_OFF)


# --------------------------------------------------------------------------- fabric contract


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {"agent": {}},
        {"name": "vm1", "agent": []},
        {"name": "vm1", "extensions": {}},
        {"name": "vm1", "extensions": ["x"]},
        {"name": "vm1", "os": "debian"},
        {"name": "vm1", "agent": {"version": {"x": 1}}},
    ],
)
def test_parse_fabric_vm_rejects_wrong_shapes(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_fabric_vm(raw)


def test_parse_fabric_vm_reads_the_contract() -> None:
    vm = parse_fabric_vm(
        {
            "name": "vm1",
            "ip": "10.77.0.11",
            "incarnation": 3,
            "agent": {
                "version": "2.7.3.0",
                "status": "Ready",
                "message": "Guest Agent is running",
                "last_report": "2026-01-02T03:04:05+00:00",
                "report_age_seconds": 1.5,
            },
            "health": {"state": "Ready", "last_report": None},
            "os": {"computer_name": "vm1", "name": "debian", "version": "12"},
            "extensions": [
                {
                    "name": SNAPSHOT_EXT,
                    "version": "1.0.91.0",
                    "handler_status": "Ready",
                    "status": "error",
                    "code": 76,
                    "message": "no network",
                    "operation": "Enable",
                    "sequence_number": 4,
                }
            ],
        }
    )
    assert vm.agent == AgentReport(True, "2.7.3.0", "Guest Agent is running", vm.agent.last_report)
    assert vm.os == OsReport("vm1", "debian", "12")
    assert vm.extensions[0].code == "76"


def test_parse_fabric_vm_skips_nameless_extensions() -> None:
    vm = parse_fabric_vm({"name": "vm1", "extensions": [{"name": None, "status": "success"}]})
    assert vm.extensions == ()


@pytest.fixture
def fabric_http() -> Iterator[str]:
    """A stand-in for the fabric's control API on a real socket (plain HTTP)."""
    documents = {
        "/control/v1/roster": ROSTER.to_json(),
        "/control/v1/vms/vm1": json.dumps(
            {"name": "vm1", "agent": {"status": "Ready", "version": "2.7.3.0"}}
        ),
        "/control/v1/vms/bad": "{not json",
        "/control/v1/vms/wrong": json.dumps({"name": "wrong", "agent": "Ready"}),
    }

    uninstall = f"/control/v1/vms/vm1/extensions/{SNAPSHOT_EXT}/uninstall"
    answers = {  # POST path -> (status, body), as control.py answers
        uninstall: (202, json.dumps({"name": "vm1", "incarnation": "9"})),
        "/control/v1/vms/vm1/extensions/Bad.Json/uninstall": (202, "{nope"),
        "/control/v1/vms/vm1/extensions/No.Incarnation/uninstall": (202, '{"name": "vm1"}'),
        "/control/v1/vms/vm1/extensions/Fabric.Bug/uninstall": (500, "fabric bug"),
    }

    @Request.application
    def fabric_app(request: Request) -> Response:
        if request.method == "POST":
            status, text = answers.get(request.path, (404, '{"error": "no such handler"}'))
            return Response(text, status=status, mimetype="application/json")
        if request.path == "/control/v1/vms/boom":
            return Response("fabric bug", status=500)
        body = documents.get(request.path)
        return Response(body, mimetype="application/json") if body else Response(status=404)

    server = make_server("127.0.0.1", 0, fabric_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.socket.getsockname()[1]}/"
    server.shutdown()
    server.server_close()


def test_http_fabric_reader(fabric_http: str) -> None:
    reader = HttpFabricClient(fabric_http, timeout=5)
    assert reader.roster() == ROSTER
    vm1 = reader.vm("vm1")
    assert vm1 is not None and vm1.agent.ready and vm1.agent.version == "2.7.3.0"
    assert reader.vm("vm9") is None
    for name in ("bad", "wrong", "boom"):
        with pytest.raises(FabricError):
            reader.vm(name)


def test_http_fabric_client_uninstalls(fabric_http: str) -> None:
    client = HttpFabricClient(fabric_http, timeout=5)
    assert client.uninstall_extension("vm1", SNAPSHOT_EXT) == "9"
    assert client.uninstall_extension("vm1", "Not.There") is None
    for handler in ("Bad.Json", "No.Incarnation", "Fabric.Bug"):
        with pytest.raises(FabricError):
            client.uninstall_extension("vm1", handler)


def test_http_fabric_reader_unreachable() -> None:
    with pytest.raises(FabricError):
        HttpFabricClient("http://127.0.0.1:9", timeout=2).roster()
    with pytest.raises(FabricError):
        HttpFabricClient("http://127.0.0.1:9", timeout=2).uninstall_extension("vm1", "A.B")


# --------------------------------------------------------------------------- end to end


@dataclass
class Lab:
    """A twin served over TLS, the fakes behind it, and an SDK client in front."""

    endpoint: str
    ca_file: Path
    fabric: FakeFabric
    power: FakePower
    compute: ComputeManagementClient


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    files = write_lab_tls("unit", tmp_path / "tls")
    fabric, power = FakeFabric(), FakePower()
    server = build_server(
        ArmTwin(fabric, power, TOKEN), 0, tls_context(files.server_cert, files.server_key)
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"https://127.0.0.1:{server.socket.getsockname()[1]}"
    compute = compute_client(endpoint, TOKEN, SUB, files.ca_cert)
    yield Lab(endpoint, files.ca_cert, fabric, power, compute)
    compute.close()
    server.shutdown()
    server.server_close()


def test_sdk_lists_and_gets_vms(lab: Lab) -> None:
    vms = list(lab.compute.virtual_machines.list(RG))
    assert [vm.name for vm in vms] == ["vm1", "vm2", "vm3"]
    vm = lab.compute.virtual_machines.get(RG, "vm1")
    assert vm.id == f"{VMS}/vm1"
    assert vm.type == "Microsoft.Compute/virtualMachines"
    assert vm.location == "snaplab-local"
    props = vm.properties
    assert props is not None
    assert props.vm_id == vm_id("unit", "vm1")
    assert props.hardware_profile.vm_size == "Standard_B1s"  # type: ignore[union-attr]
    assert props.storage_profile.os_disk.os_type == "Linux"  # type: ignore[union-attr]
    os_disk = props.storage_profile.os_disk  # type: ignore[union-attr]
    assert os_disk.name.startswith("vm1_OsDisk_1_")
    assert props.os_profile.computer_name == "vm1"  # type: ignore[union-attr]
    assert props.os_profile.linux_configuration.provision_vm_agent is True  # type: ignore[union-attr]
    assert props.provisioning_state == "Succeeded"
    assert props.instance_view is None


def test_sdk_get_with_instance_view(lab: Lab) -> None:
    vm = lab.compute.virtual_machines.get(RG, "vm1", expand="instanceView")
    view = vm.properties.instance_view  # type: ignore[union-attr]
    assert view is not None
    assert view.vm_agent.vm_agent_version == "2.7.3.0"  # type: ignore[union-attr]
    assert view.statuses[1].code == "PowerState/running"  # type: ignore[index]


def test_sdk_instance_view_agent_ready(lab: Lab) -> None:
    iv = lab.compute.virtual_machines.instance_view(RG, "vm1")
    assert (iv.computer_name, iv.os_name, iv.os_version) == ("vm1", "debian", "12")
    agent = iv.vm_agent
    assert agent is not None and agent.statuses and agent.extension_handlers
    assert agent.vm_agent_version == "2.7.3.0"
    assert agent.statuses[0].code == "ProvisioningState/succeeded"
    assert agent.statuses[0].display_status == "Ready"
    assert agent.statuses[0].message == "Guest Agent is running"
    assert agent.statuses[0].time is not None and agent.statuses[0].time.year == 2026
    handler = agent.extension_handlers[0]
    assert (handler.type, handler.type_handler_version) == (SNAPSHOT_EXT, "1.0.91.0")
    assert handler.status is not None and handler.status.display_status == "Ready"
    assert iv.extensions is not None
    ext_status = iv.extensions[0].statuses[0]  # type: ignore[index]
    assert iv.extensions[0].name == "VMSnapshotLinux"
    assert iv.extensions[0].type == SNAPSHOT_EXT
    assert iv.extensions[0].type_handler_version == "1.0.91.0"
    assert ext_status.code == "ProvisioningState/succeeded"
    assert ext_status.display_status == "Provisioning succeeded"
    assert iv.statuses is not None
    assert [s.code for s in iv.statuses] == ["ProvisioningState/succeeded", "PowerState/running"]
    assert iv.statuses[1].display_status == "VM running"


def test_sdk_instance_view_agent_not_ready(lab: Lab) -> None:
    iv = lab.compute.virtual_machines.instance_view(RG, "vm2")
    agent = iv.vm_agent
    assert agent is not None and agent.statuses
    assert agent.vm_agent_version == "Unknown"
    status = agent.statuses[0]
    assert status.code == "ProvisioningState/Unavailable"
    assert status.level == "Warning"
    assert status.display_status == "Not Ready"
    assert status.message == AGENT_STALE_MESSAGE
    assert not agent.extension_handlers
    ext_status = iv.extensions[0].statuses[0]  # type: ignore[index]
    assert ext_status.code == "ProvisioningState/failed/76"
    assert ext_status.level == "Error"
    assert ext_status.display_status == "Provisioning failed"
    assert ext_status.message == "FailedRetryableSnapshotFailedNoNetwork"


def test_sdk_instance_view_agent_never_reported(lab: Lab) -> None:
    iv = lab.compute.virtual_machines.instance_view(RG, "vm3")
    assert iv.vm_agent.vm_agent_version == "Unknown"  # type: ignore[union-attr]
    status = iv.vm_agent.statuses[0]  # type: ignore[union-attr,index]
    assert status.display_status == "Not Ready"
    assert status.message == AGENT_NEVER_REPORTED_MESSAGE


def _power_code(lab: Lab, vm: str) -> str:
    iv = lab.compute.virtual_machines.instance_view(RG, vm)
    return str(iv.statuses[1].code)  # type: ignore[index]


def test_sdk_power_operations_complete(lab: Lab) -> None:
    container = "snaplab-unit-vm1"
    assert lab.compute.virtual_machines.begin_power_off(RG, "vm1").result(timeout=30) is None
    assert lab.power.containers[container] == "exited"
    assert lab.fabric.power["vm1"] == "stopped"
    assert _power_code(lab, "vm1") == "PowerState/stopped"

    lab.compute.virtual_machines.begin_start(RG, "vm1").result(timeout=30)
    assert _power_code(lab, "vm1") == "PowerState/running"

    lab.compute.virtual_machines.begin_restart(RG, "vm1").result(timeout=30)
    assert _power_code(lab, "vm1") == "PowerState/running"
    assert [a for _, a in lab.power.calls] == [
        PowerAction.POWER_OFF,
        PowerAction.START,
        PowerAction.RESTART,
    ]


def test_sdk_sees_the_transition_while_an_operation_runs(lab: Lab) -> None:
    lab.power.hold = threading.Event()
    poller = lab.compute.virtual_machines.begin_power_off(RG, "vm2")
    assert _power_code(lab, "vm2") == "PowerState/stopping"
    assert not poller.done()
    lab.power.hold.set()
    poller.result(timeout=30)
    assert poller.status() == "Succeeded"
    assert _power_code(lab, "vm2") == "PowerState/stopped"


def test_sdk_failed_operation_raises(lab: Lab) -> None:
    lab.power.fail = True
    poller = lab.compute.virtual_machines.begin_start(RG, "vm1")
    with pytest.raises(HttpResponseError):
        poller.result(timeout=30)
    assert poller.status() == "Failed"


def test_sdk_errors_map_to_azure_exceptions(lab: Lab) -> None:
    with pytest.raises(ResourceNotFoundError) as missing:
        lab.compute.virtual_machines.get(RG, "vm9")
    assert missing.value.error is not None and missing.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError):
        lab.compute.virtual_machines.begin_power_off(RG, "vm9")
    wrong = compute_client(lab.endpoint, "not-the-token", SUB, lab.ca_file)
    with pytest.raises(ClientAuthenticationError):
        wrong.virtual_machines.get(RG, "vm1")
    wrong.close()


def test_sdk_lists_and_gets_extensions(lab: Lab) -> None:
    listed = lab.compute.virtual_machine_extensions.list(RG, "vm1")
    assert listed.value is not None
    assert [e.name for e in listed.value] == ["VMSnapshotLinux"]
    ext = lab.compute.virtual_machine_extensions.get(RG, "vm1", "VMSnapshotLinux")
    assert ext.id == f"{VMS}/vm1/extensions/VMSnapshotLinux"
    assert ext.type == "Microsoft.Compute/virtualMachines/extensions"
    assert ext.location == "snaplab-local"
    props = ext.properties
    assert props is not None
    assert (props.publisher, props.type) == ("Microsoft.Azure.RecoveryServices", "VMSnapshotLinux")
    assert props.type_handler_version == "1.0"
    assert props.auto_upgrade_minor_version is True
    assert props.provisioning_state == "Succeeded"
    assert props.instance_view is None

    expanded = lab.compute.virtual_machine_extensions.get(
        RG, "vm2", "VMSnapshotLinux", expand="instanceView"
    )
    assert expanded.properties is not None
    assert expanded.properties.provisioning_state == "Failed"
    view = expanded.properties.instance_view
    assert view is not None
    assert (view.name, view.type, view.type_handler_version) == (
        "VMSnapshotLinux",
        SNAPSHOT_EXT,
        "1.0.91.0",
    )
    assert view.statuses is not None
    assert view.statuses[0].code == "ProvisioningState/failed/76"
    assert view.statuses[0].display_status == "Provisioning failed"
    assert view.statuses[0].message == "FailedRetryableSnapshotFailedNoNetwork"
    with_views = lab.compute.virtual_machine_extensions.list(RG, "vm2", expand="instanceView")
    assert with_views.value is not None and with_views.value[0].properties is not None
    assert with_views.value[0].properties.instance_view is not None


def test_sdk_extension_errors(lab: Lab) -> None:
    with pytest.raises(ResourceNotFoundError) as missing:
        lab.compute.virtual_machine_extensions.get(RG, "vm1", "CustomScript")
    assert missing.value.error is not None and missing.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError):
        lab.compute.virtual_machine_extensions.list(RG, "vm9")
    assert lab.compute.virtual_machine_extensions.begin_delete(RG, "vm1", "Nope").result() is None
    assert lab.fabric.uninstalls == []


def test_sdk_deletes_an_extension(lab: Lab) -> None:
    poller = lab.compute.virtual_machine_extensions.begin_delete(RG, "vm1", "VMSnapshotLinux")
    assert poller.result(timeout=30) is None
    assert poller.status() == "Succeeded"
    assert lab.fabric.uninstalls == [("vm1", SNAPSHOT_EXT)]
    assert lab.compute.virtual_machine_extensions.list(RG, "vm1").value == []
    with pytest.raises(ResourceNotFoundError):
        lab.compute.virtual_machine_extensions.get(RG, "vm1", "VMSnapshotLinux")


def test_sdk_failed_extension_delete_raises(lab: Lab) -> None:
    lab.fabric.not_in_goal_state.add(SNAPSHOT_EXT)
    poller = lab.compute.virtual_machine_extensions.begin_delete(RG, "vm2", "VMSnapshotLinux")
    with pytest.raises(HttpResponseError) as failed:
        poller.result(timeout=30)
    assert poller.status() == "Failed"
    assert "goal state" in str(failed.value)


def test_sdk_refuses_a_twin_it_cannot_verify(lab: Lab, tmp_path: Path) -> None:
    """TLS stays verified: another lab's CA does not vouch for this twin."""
    other = write_lab_tls("other", tmp_path / "other")
    stranger = ComputeManagementClient(
        StaticTokenCredential(TOKEN),
        SUB,
        base_url=lab.endpoint,
        connection_verify=str(other.ca_cert),
        retry_total=0,  # a refused certificate is final; don't sit through the SDK's retries
    )
    with pytest.raises(ServiceRequestError, match=r"(?i)certificate"):
        stranger.virtual_machines.get(RG, "vm1")
    stranger.close()


# --------------------------------------------------------------------------- contract


def _agent_status_document() -> bytes:
    """A VM status as the real agent uploads it: healthy agent, failed snapshot extension."""
    now = "2026-01-02T03:04:05Z"
    return json.dumps(
        {
            "version": "1.1",
            "timestampUTC": now,
            "aggregateStatus": {
                "guestAgentStatus": {
                    "version": "2.7.3.0",
                    "status": "Ready",
                    "formattedMessage": {"lang": "en-US", "message": "Guest Agent is running"},
                },
                "handlerAggregateStatus": [
                    {
                        "handlerName": SNAPSHOT_EXT,
                        "handlerVersion": "1.0.91.0",
                        "status": "Ready",
                        "code": 0,
                        "runtimeSettingsStatus": {
                            "sequenceNumber": 1,
                            "settingsStatus": {
                                "timestampUTC": now,
                                "status": {
                                    "name": SNAPSHOT_EXT,
                                    "operation": "Enable",
                                    "status": "error",
                                    "code": 76,
                                    "formattedMessage": {"lang": "en-US", "message": "no network"},
                                },
                            },
                        },
                    }
                ],
            },
            "guestOSInfo": {"computerName": "vm1", "osName": "debian", "osVersion": "12"},
        }
    ).encode()


def test_contract_with_the_fabric_control_api(tmp_path: Path) -> None:
    """The real control API, read by the real reader, shown through the twin to the SDK."""
    control = pytest.importorskip("lab.platform.control")
    guest_state = pytest.importorskip("lab.platform.guest_state")
    platform = guest_state.Fabric(ROSTER, stale_after_seconds=3600.0)
    platform.guest("vm1").record_status(_agent_status_document(), guest_state.CHANNEL_DIRECT)

    control_app = ExtensionRoutes(control.ControlApp(platform), platform)
    fabric_server = make_server("127.0.0.1", 0, control_app, threaded=True)
    threading.Thread(target=fabric_server.serve_forever, daemon=True).start()
    reader = HttpFabricClient(f"http://127.0.0.1:{fabric_server.socket.getsockname()[1]}")
    files = write_lab_tls("unit", tmp_path / "tls")
    twin = build_server(
        ArmTwin(reader, FakePower(), TOKEN), 0, tls_context(files.server_cert, files.server_key)
    )
    threading.Thread(target=twin.serve_forever, daemon=True).start()
    compute = compute_client(
        f"https://127.0.0.1:{twin.socket.getsockname()[1]}", TOKEN, SUB, files.ca_cert
    )
    try:
        assert reader.roster() == ROSTER
        assert reader.vm("nope") is None
        healthy = compute.virtual_machines.instance_view(RG, "vm1")
        assert healthy.vm_agent.vm_agent_version == "2.7.3.0"  # type: ignore[union-attr]
        assert healthy.vm_agent.statuses[0].display_status == "Ready"  # type: ignore[union-attr,index]
        assert healthy.computer_name == "vm1"
        failed = healthy.extensions[0].statuses[0]  # type: ignore[index]
        assert failed.code == "ProvisioningState/failed/76"
        assert failed.message == "no network"
        silent = compute.virtual_machines.instance_view(RG, "vm2")
        assert silent.vm_agent.vm_agent_version == "Unknown"  # type: ignore[union-attr]
        assert silent.vm_agent.statuses[0].message == AGENT_NEVER_REPORTED_MESSAGE  # type: ignore[union-attr,index]
    finally:
        compute.close()
        twin.shutdown()
        fabric_server.shutdown()


def test_contract_power_with_the_fabric_control_api(tmp_path: Path) -> None:
    """A power-off through the SDK stops the guest and the *fabric* records it; a guest
    whose OS went down on its own is still running as far as the platform knows."""
    control = pytest.importorskip("lab.platform.control")
    guest_state = pytest.importorskip("lab.platform.guest_state")
    platform = guest_state.Fabric(ROSTER, stale_after_seconds=3600.0)
    control_app = ExtensionRoutes(control.ControlApp(platform), platform)
    fabric_server = make_server("127.0.0.1", 0, control_app, threaded=True)
    threading.Thread(target=fabric_server.serve_forever, daemon=True).start()
    reader = HttpFabricClient(f"http://127.0.0.1:{fabric_server.socket.getsockname()[1]}")
    power = FakePower()
    files = write_lab_tls("unit", tmp_path / "tls")
    twin = build_server(
        ArmTwin(reader, power, TOKEN), 0, tls_context(files.server_cert, files.server_key)
    )
    threading.Thread(target=twin.serve_forever, daemon=True).start()
    compute = compute_client(
        f"https://127.0.0.1:{twin.socket.getsockname()[1]}", TOKEN, SUB, files.ca_cert
    )

    def code(vm: str) -> str:
        return str(compute.virtual_machines.instance_view(RG, vm).statuses[1].code)  # type: ignore[index]

    try:
        power.containers["snaplab-unit-vm2"] = "exited"  # poweroff inside vm2
        assert code("vm2") == "PowerState/running"
        compute.virtual_machines.begin_power_off(RG, "vm1").result(timeout=30)
        assert platform.power.get("vm1") == "stopped"
        assert reader.vm("vm1").power_state == "stopped"  # type: ignore[union-attr]
        assert code("vm1") == "PowerState/stopped"
        compute.virtual_machines.begin_start(RG, "vm1").result(timeout=30)
        assert code("vm1") == "PowerState/running"
        with pytest.raises(FabricError):
            reader.set_power_state("vm9", "stopped")
    finally:
        compute.close()
        twin.shutdown()
        fabric_server.shutdown()


def test_contract_extension_delete_with_the_fabric_control_api(tmp_path: Path) -> None:
    """The real control API's uninstall route, driven by the SDK through the twin; a
    thread plays the agent (it stops reporting the handler once told to uninstall)."""
    control = pytest.importorskip("lab.platform.control")
    guest_state = pytest.importorskip("lab.platform.guest_state")
    documents = pytest.importorskip("lab.platform.documents")
    platform = guest_state.Fabric(ROSTER, stale_after_seconds=3600.0)
    guest = platform.guest("vm1")
    guest.set_handler(
        documents.HandlerSpec(name=SNAPSHOT_EXT, version="1.0.91.0", manifest_url="http://f/m")
    )
    guest.record_status(_agent_status_document(), guest_state.CHANNEL_DIRECT)
    control_app = ExtensionRoutes(control.ControlApp(platform), platform)
    fabric_server = make_server("127.0.0.1", 0, control_app, threaded=True)
    threading.Thread(target=fabric_server.serve_forever, daemon=True).start()
    client = HttpFabricClient(f"http://127.0.0.1:{fabric_server.socket.getsockname()[1]}")
    stop = threading.Event()

    def agent() -> None:
        while not stop.wait(0.05):
            if any(h.state == "uninstall" for h in guest.handlers()):
                report = json.loads(_agent_status_document())
                report["aggregateStatus"]["handlerAggregateStatus"] = []
                guest.record_status(json.dumps(report).encode(), guest_state.CHANNEL_DIRECT)
                return

    files = write_lab_tls("unit", tmp_path / "tls")
    twin = build_server(
        ArmTwin(client, FakePower(), TOKEN, extension_poll_seconds=0.05),
        0,
        tls_context(files.server_cert, files.server_key),
    )
    threading.Thread(target=twin.serve_forever, daemon=True).start()
    compute = compute_client(
        f"https://127.0.0.1:{twin.socket.getsockname()[1]}", TOKEN, SUB, files.ca_cert
    )
    try:
        if client.uninstall_extension("vm1", SNAPSHOT_EXT) is None:
            pytest.skip("the control API has no uninstall route yet")
        assert client.uninstall_extension("vm2", SNAPSHOT_EXT) is None  # not in its goal state
        # The probe set the handler to uninstall: put it back for the SDK's turn.
        guest.set_handler(
            documents.HandlerSpec(name=SNAPSHOT_EXT, version="1.0.91.0", manifest_url="http://f/m")
        )
        before = int(guest.incarnation)
        threading.Thread(target=agent, daemon=True).start()
        compute.virtual_machine_extensions.begin_delete(RG, "vm1", "VMSnapshotLinux").result(
            timeout=30
        )
        [handler] = guest.handlers()
        assert handler.state == "uninstall"
        assert int(guest.incarnation) > before
        assert compute.virtual_machine_extensions.list(RG, "vm1").value == []
    finally:
        stop.set()
        compute.close()
        twin.shutdown()
        fabric_server.shutdown()


# --------------------------------------------------------------------------- entry point


def _env(tls: Path, port: int) -> dict[str, str]:
    return {
        "SNAPLAB_FABRIC_URL": "http://127.0.0.1:9",  # nothing listens: every read is a 502
        "SNAPLAB_FABRIC_TOKEN": "control-token-of-the-unit-lab-0123456789",
        "SNAPLAB_ARM_PORT": str(port),
        "SNAPLAB_ARM_TOKEN": TOKEN,
        "SNAPLAB_TLS_CERT": str(tls / "server.pem"),
        "SNAPLAB_TLS_KEY": str(tls / "server.key"),
    }


def test_config_from_env(tmp_path: Path) -> None:
    config = TwinConfig.from_env(_env(tmp_path, 8443))
    assert (config.port, config.token) == (8443, TOKEN)
    assert config.tls_key == tmp_path / "server.key"
    for key, value in [
        ("SNAPLAB_ARM_PORT", "x"),
        ("SNAPLAB_ARM_PORT", "70000"),
        ("SNAPLAB_ARM_TOKEN", " "),
        ("SNAPLAB_FABRIC_URL", ""),
        ("SNAPLAB_FABRIC_TOKEN", ""),
    ]:
        with pytest.raises(ConfigError, match=key):
            TwinConfig.from_env({**_env(tmp_path, 8443), key: value})


def test_main_refuses_to_start_without_config() -> None:
    assert twin_main.main({}) == 2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_main_serves_logs_and_stops_on_sigterm(tmp_path: Path) -> None:
    files = write_lab_tls("unit", tmp_path)
    port = _free_port()
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, **_env(tmp_path, port), "PYTHONPATH": str(repo)}
    process = subprocess.Popen(
        [sys.executable, "-m", "lab.platform.arm.main"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        context = ssl.create_default_context(cafile=str(files.ca_cert))
        url = f"https://127.0.0.1:{port}{VMS}/vm1?{API}"
        request = urllib.request.Request(url, headers=AUTH)
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(request, context=context, timeout=5)
            except urllib.error.HTTPError as answered:
                assert answered.code == 502  # the fabric is down, but the twin answers
                break
            except urllib.error.URLError:
                assert time.monotonic() < deadline, "the twin did not start listening"
                time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert f'"GET {VMS}/vm1?{API}" 502' in stderr
