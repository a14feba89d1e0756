"""Reads a lab's fabric control API (JSON over HTTP on the lab bridge) from the host.

Every request carries the lab's control token (:mod:`lab.platform.control_auth`). A
caller that knows only the fabric's address gets the token from the fabric container's
label, found by that address; it is looked up again once when the fabric answers 401
(a lab of the same address may have been made anew since).
"""

from __future__ import annotations

import json
import threading
from typing import Any, cast

import docker
import requests
from docker.errors import DockerException

from lab.errors import PlatformError
from lab.platform.control_auth import bearer
from lab.platform.roster import CONTROL_PORT, Roster
from lab.provision import engines
from lab.provision.labels import CONTROL_TOKEN_LABEL, ROLE_LABEL

TIMEOUT = 5.0

_tokens: dict[str, str] = {}
_tokens_lock = threading.Lock()


def control_token(fabric_ip: str, *, fresh: bool = False) -> str:
    """The control token of the fabric at ``fabric_ip``, from its container's label."""
    with _tokens_lock:
        if not fresh and fabric_ip in _tokens:
            return _tokens[fabric_ip]
    for fabric in _fabrics():
        networks = (fabric.attrs.get("NetworkSettings") or {}).get("Networks") or {}
        if any(net.get("IPAddress") == fabric_ip for net in networks.values()):
            token = str(fabric.attrs.get("Labels", {}).get(CONTROL_TOKEN_LABEL, ""))
            with _tokens_lock:
                _tokens[fabric_ip] = token
            return token
    raise PlatformError(f"no running lab fabric at {fabric_ip} (its control token is unknown)")


def _fabrics() -> list[Any]:
    """Every labelled fabric on the environment's engine and on every other engine this
    process placed labs on (:mod:`lab.provision.engines`)."""
    selector = {"label": [f"{ROLE_LABEL}=fabric", CONTROL_TOKEN_LABEL]}
    found: list[Any] = []
    try:
        client = docker.from_env()
        try:
            found.extend(client.containers.list(filters=selector, sparse=True))
        finally:
            client.close()
        for other in engines.connected():
            if not engines.engine_of(other).is_default:
                found.extend(other.containers.list(filters=selector, sparse=True))
    except DockerException as exc:
        raise PlatformError(f"cannot read the fabric's control token from Docker: {exc}") from exc
    return found


class FabricClient:
    """The host side of ``lab.platform.control``: VM agent views and goal-state pokes,
    the platform's power states, backup policies and the extension versions it offers."""

    def __init__(self, fabric_ip: str, port: int = CONTROL_PORT, token: str | None = None) -> None:
        self.base_url = f"http://{fabric_ip}:{port}/control/v1"
        self.fabric_ip = fabric_ip
        self._token = token

    def vms(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._get("/vms")["vms"])

    def vm(self, name: str) -> dict[str, Any]:
        return self._get(f"/vms/{name}")

    def roster(self) -> Roster:
        return Roster.from_json(json.dumps(self._get("/roster")))

    def storage_ready(self) -> bool:
        return bool(self._get("/storage").get("ready"))

    def start_backup(self, vm: str) -> dict[str, Any]:
        return self._send("POST", f"/vms/{vm}/backups")

    def job(self, job_id: str) -> dict[str, Any]:
        return self._get(f"/jobs/{job_id}")

    def jobs(self, vm: str | None = None) -> list[dict[str, Any]]:
        query = f"?vm={vm}" if vm else ""
        return cast(list[dict[str, Any]], self._get(f"/jobs{query}")["jobs"])

    def restore_points(self, vm: str) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._get(f"/vms/{vm}/restore-points")["restore_points"])

    # ------------------------------------------------------------------ power

    def power_state(self, vm: str) -> str:
        """The platform's power state of a VM (not its container's)."""
        return str(self._get(f"/vms/{vm}/power")["power_state"])

    def set_power_view_stale(self, vm: str, stale: bool) -> bool:
        """Make the platform's view of a VM stale (it drops the host's reports of the
        VM's OS) or fresh again; returns the new setting."""
        return bool(self._send("PUT", f"/vms/{vm}/power/view", {"stale": stale})["stale"])

    # ------------------------------------------------------------------ policies

    def policies(self) -> dict[str, Any]:
        """``{"azure_now", "time_scale", "host_snapshot_slots", "policies": [...]}``."""
        return self._get("/policies")

    def set_policy(self, name: str, run_time: str) -> dict[str, Any]:
        return self._send("PUT", f"/policies/{name}", {"schedule_run_time": run_time})

    def protect(self, vm: str, policy: str) -> dict[str, Any]:
        return self._send("PUT", f"/vms/{vm}/policy", {"policy": policy})

    def unprotect(self, vm: str) -> dict[str, Any]:
        return self._send("DELETE", f"/vms/{vm}/policy")

    # ------------------------------------------------------------------ extension versions

    def extension_versions(self, handler: str) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._get(f"/extensions/{handler}/versions")["versions"])

    def publish_broken_version(self, handler: str, version: str, package: str) -> dict[str, Any]:
        body = {"version": version, "package": package}
        return self._send("POST", f"/extensions/{handler}/versions", body)

    def withdraw_version(self, handler: str, version: str) -> dict[str, Any]:
        return self._send("DELETE", f"/extensions/{handler}/versions/{version}")

    # ------------------------------------------------------------------ redeploy

    def redeploy(self, vm: str, wireserver_ip: str) -> dict[str, Any]:
        """Move the VM to a host whose WireServer answers at ``wireserver_ip``."""
        return self._send("POST", f"/vms/{vm}/redeploy", {"wireserver_ip": wireserver_ip})

    def undo_redeploy(self, vm: str) -> dict[str, Any]:
        return self._send("DELETE", f"/vms/{vm}/redeploy")

    def answers(self) -> bool:
        try:
            self._get("/roster")
        except PlatformError:
            return False
        return True

    def _get(self, path: str) -> dict[str, Any]:
        return self._send("GET", path)

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = self.base_url + path
        try:
            token = self._token or control_token(self.fabric_ip)
            response = self._request(method, url, body, token)
            if response.status_code == 401 and self._token is None:
                fresh = control_token(self.fabric_ip, fresh=True)
                response = self._request(method, url, body, fresh)
            if response.status_code >= 400:
                raise PlatformError(f"fabric control API {method} {url}: {_reason(response)}")
            return cast(dict[str, Any], response.json())
        except (requests.RequestException, ValueError) as exc:
            raise PlatformError(f"fabric control API {url}: {exc}") from exc

    @staticmethod
    def _request(
        method: str, url: str, body: dict[str, Any] | None, token: str
    ) -> requests.Response:
        return requests.request(method, url, json=body, headers=bearer(token), timeout=TIMEOUT)


def _reason(response: requests.Response) -> str:
    """The control API's ``{"error": ...}`` text (or ARM-style ``{"error": {"code",
    "message"}}`` for a refused credential), or the HTTP status."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        error = f"{error.get('code')}: {error.get('message')}"
    return f"HTTP {response.status_code}: {error or response.reason}"
