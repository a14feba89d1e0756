"""The control API's extension routes (lab/platform/control_extensions.py): the twin, as
CRP, enables a handler in a VM's goal state and reads the goal state's handlers back; the
ExtensionsConfig the agent then fetches carries the handler, its new sequence number and
its protected settings encrypted to the VM's certificate."""

from __future__ import annotations

import json
import threading

import pytest
from werkzeug.serving import make_server
from werkzeug.test import Client

from lab.extension.run_command_package import HANDLER_NAME, LATEST_VERSION
from lab.platform.arm.fabric import HttpFabricClient
from lab.platform.control import ControlApp
from lab.platform.control_extensions import ExtensionRoutes
from lab.platform.guest_state import Fabric
from tests.unit.fabric_samples import make_fabric

PATH = f"/control/v1/vms/vm1/extensions/{HANDLER_NAME}"


@pytest.fixture
def fabric() -> Fabric:
    platform, _ = make_fabric()
    platform.artifacts.publish_extension(HANDLER_NAME, LATEST_VERSION, b"zip")
    return platform


@pytest.fixture
def client(fabric: Fabric) -> Client:
    return Client(ExtensionRoutes(ControlApp(fabric), fabric))


def _put(client: Client, body: object, path: str = PATH) -> tuple[int, dict[str, object]]:
    answer = client.put(path, data=json.dumps(body), content_type="application/json")
    return answer.status_code, answer.get_json()


def test_enable_puts_the_handler_in_the_goal_state(client: Client, fabric: Fabric) -> None:
    guest = fabric.guest("vm1")
    assert guest is not None
    before = int(guest.incarnation)
    status, answer = _put(
        client,
        {
            "version": LATEST_VERSION,
            "public_settings": {},
            "protected_settings": {"script": "ZWNobyBoaQ=="},
        },
    )
    assert status == 200
    assert answer == {
        "vm": "vm1",
        "name": HANDLER_NAME,
        "version": LATEST_VERSION,
        "seq_no": 0,
        "incarnation": str(before + 1),
    }
    [spec] = guest.handlers()
    assert (spec.name, spec.state, spec.seq_no) == (HANDLER_NAME, "enabled", 0)
    assert spec.manifest_url == fabric.artifacts.manifest_url(HANDLER_NAME)
    assert spec.protected_settings == {"script": "ZWNobyBoaQ=="}


def test_each_enable_takes_the_next_sequence_number(client: Client, fabric: Fabric) -> None:
    for expected in (0, 1, 2):
        _, answer = _put(client, {"version": LATEST_VERSION})
        assert answer["seq_no"] == expected
    guest = fabric.guest("vm1")
    assert guest is not None
    assert [h.seq_no for h in guest.handlers()] == [2]


def test_the_handlers_read_back_without_protected_settings(client: Client) -> None:
    _put(
        client,
        {"version": LATEST_VERSION, "public_settings": {"a": 1}, "protected_settings": {"b": 2}},
    )
    answer = client.get("/control/v1/vms/vm1/extensions").get_json()
    assert answer == {
        "vm": "vm1",
        "handlers": [
            {
                "name": HANDLER_NAME,
                "version": LATEST_VERSION,
                "state": "enabled",
                "seq_no": 0,
                "public_settings": {"a": 1},
            }
        ],
    }


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        (PATH, {"version": LATEST_VERSION}, 200),
        ("/control/v1/vms/vm9/extensions/" + HANDLER_NAME, {"version": LATEST_VERSION}, 404),
        ("/control/v1/vms/vm1/extensions/Not.Published", {"version": "1.0"}, 404),
        (PATH, {"version": "9.9.9"}, 409),
        (PATH, {}, 400),
        (PATH, {"version": LATEST_VERSION, "public_settings": []}, 400),
        (PATH, {"version": LATEST_VERSION, "protected_settings": "x"}, 400),
        (PATH, ["not", "an", "object"], 400),
    ],
)
def test_refusals(client: Client, path: str, body: object, status: int) -> None:
    code, answer = _put(client, body, path)
    assert code == status
    if status != 200:
        assert isinstance(answer["error"], str) and answer["error"]


def test_wrong_methods_and_other_routes(client: Client) -> None:
    assert client.post(PATH).status_code == 405
    assert client.delete("/control/v1/vms/vm1/extensions").status_code == 405
    # the control app's own extension route is not taken over
    assert client.post(f"{PATH}/uninstall").status_code == 404  # not in the goal state yet
    assert client.get("/control/v1/vms/vm1").status_code == 200


def test_the_twins_client_against_the_routes(fabric: Fabric) -> None:
    """HttpFabricClient's calls answered by the real routes over a real socket."""
    server = make_server("127.0.0.1", 0, ExtensionRoutes(ControlApp(fabric), fabric), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = HttpFabricClient(f"http://127.0.0.1:{server.socket.getsockname()[1]}")
        assert client.handler_versions(HANDLER_NAME) == (LATEST_VERSION,)
        assert client.handler_versions("Not.Published") is None
        published = client.enable_handler("vm1", HANDLER_NAME, LATEST_VERSION, {"p": 1}, {"s": 2})
        assert (published.name, published.seq_no) == (HANDLER_NAME, 0)
        [handler] = client.goal_state_handlers("vm1")
        assert (handler.name, handler.seq_no, dict(handler.public_settings)) == (
            HANDLER_NAME,
            0,
            {"p": 1},
        )
    finally:
        server.shutdown()
        server.server_close()
