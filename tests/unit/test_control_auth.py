"""The control API's per-lab token: the middleware, both clients, and the fabric's start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.test import Client

from lab.errors import PlatformError
from lab.platform.arm.fabric import FabricError, HttpFabricClient
from lab.platform.control import ControlApp
from lab.platform.control_auth import TOKEN_ENV, RequireToken, TokenError, bearer, check_token
from lab.provision import fabric_client
from lab.provision.fabric_client import FabricClient
from tests.unit.fabric_samples import make_fabric

TOKEN = "unit-lab-control-token-0123456789abcdef"


def test_check_token_refuses_short_or_missing() -> None:
    assert check_token(f"  {TOKEN}\n") == TOKEN
    for bad in (None, "", "   ", "short-token"):
        with pytest.raises(TokenError, match=TOKEN_ENV):
            check_token(bad)


def _client() -> Client:
    return Client(RequireToken(ControlApp(make_fabric()[0]), TOKEN))


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "AuthenticationFailed"),
        ({"Authorization": f"Basic {TOKEN}"}, "AuthenticationFailed"),
        ({"Authorization": "Bearer "}, "AuthenticationFailed"),
        ({"Authorization": "Bearer " + "A" * 43}, "InvalidAuthenticationToken"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "InvalidAuthenticationToken"),
        ({"Authorization": f"Bearer {TOKEN[:-1]}"}, "InvalidAuthenticationToken"),
        ({"Authorization": "Bearer \u00e9t\u00e9"}, "InvalidAuthenticationToken"),
    ],
)
def test_every_route_refuses_a_missing_or_wrong_token(headers: dict[str, str], code: str) -> None:
    client = _client()
    for method, path in (
        ("GET", "/control/v1/health"),
        ("PUT", "/control/v1/vms/vm1/power"),
        ("POST", "/control/v1/vms/vm1/backups"),
        ("DELETE", "/control/v1/extensions/x/versions/1"),
        ("GET", "/nothing/here"),
    ):
        response = client.open(path, method=method, headers=headers, json={"power_state": "x"})
        assert response.status_code == 401, (method, path)
        assert json.loads(response.data)["error"]["code"] == code
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_token_opens_the_api_and_power_stays_put_without_it() -> None:
    client = _client()
    refused = client.put("/control/v1/vms/vm1/power", json={"power_state": "stopped"})
    assert refused.status_code == 401
    auth = bearer(TOKEN)
    assert json.loads(client.get("/control/v1/vms/vm1/power", headers=auth).data) == {
        "vm": "vm1",
        "power_state": "running",
    }
    assert client.get("/control/v1/health", headers=auth).status_code == 200


def test_fabric_will_not_start_without_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    argv = [sys.executable, "-m", "lab.platform.fabric_main", "--log-dir", str(tmp_path)]
    for token in (None, "too-short"):
        run_env = env if token is None else {**env, TOKEN_ENV: token}
        done = subprocess.run(
            [*argv, "--no-firewall"], env=run_env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, done.stdout + done.stderr
        assert "never runs open" in done.stdout + done.stderr


@pytest.fixture
def control_url() -> Iterator[str]:
    server = make_server("127.0.0.1", 0, RequireToken(ControlApp(make_fabric()[0]), TOKEN))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_arm_twin_client_sends_the_token(control_url: str) -> None:
    HttpFabricClient(control_url, timeout=5, token=TOKEN).set_power_state("vm1", "stopped")
    assert HttpFabricClient(control_url, timeout=5, token=TOKEN).roster().lab
    with pytest.raises(FabricError, match="401"):
        HttpFabricClient(control_url, timeout=5).roster()
    with pytest.raises(FabricError, match="401"):
        HttpFabricClient(control_url, timeout=5, token="B" * 43).roster()


def test_host_client_uses_an_explicit_token(control_url: str) -> None:
    port = int(control_url.rsplit(":", 1)[1])
    assert FabricClient("127.0.0.1", port, token=TOKEN).power_state("vm1") == "running"
    with pytest.raises(PlatformError, match="InvalidAuthenticationToken"):
        FabricClient("127.0.0.1", port, token="C" * 43).power_state("vm1")


def test_host_client_finds_the_token_and_looks_again_after_a_401(
    control_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lab made anew at the same address has a new token: one 401, one fresh look-up."""
    port = int(control_url.rsplit(":", 1)[1])
    looked: list[bool] = []

    def lookup(ip: str, *, fresh: bool = False) -> str:
        looked.append(fresh)
        return TOKEN if fresh else "stale-token-of-an-older-lab-000000"

    monkeypatch.setattr(fabric_client, "control_token", lookup)
    assert FabricClient("127.0.0.1", port).power_state("vm1") == "running"
    assert looked == [False, True]


def test_token_lookup_matches_the_fabric_by_address(monkeypatch: pytest.MonkeyPatch) -> None:
    class Summary:
        def __init__(self, ip: str, token: str) -> None:
            self.attrs: dict[str, Any] = {
                "Labels": {"snaplab.control.token": token},
                "NetworkSettings": {"Networks": {"snaplab-x": {"IPAddress": ip}}},
            }

    class Docker:
        class containers:  # docker-py's attribute name
            @staticmethod
            def list(**_: object) -> list[Summary]:
                return [Summary("10.213.7.2", "seven"), Summary("10.213.8.2", "eight")]

        def close(self) -> None:
            pass

    monkeypatch.setattr(fabric_client.docker, "from_env", Docker)
    fabric_client._tokens.clear()
    assert fabric_client.control_token("10.213.8.2") == "eight"
    assert fabric_client.control_token("10.213.7.2", fresh=True) == "seven"
    with pytest.raises(PlatformError, match=r"no running lab fabric at 10\.213\.9\.2"):
        fabric_client.control_token("10.213.9.2")
    fabric_client._tokens.clear()


def test_requests_without_token_header_fail_over_a_socket(control_url: str) -> None:
    answer = requests.get(control_url + "/control/v1/roster", timeout=5)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "AuthenticationFailed"
