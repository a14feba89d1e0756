"""Reads a lab's fabric control API (JSON over HTTP on the lab bridge) from the host."""

from __future__ import annotations

import json
from typing import Any, cast

import requests

from lab.errors import PlatformError
from lab.platform.roster import CONTROL_PORT, Roster

TIMEOUT = 5.0


class FabricClient:
    """The host side of ``lab.platform.control``: VM agent views and goal-state pokes."""

    def __init__(self, fabric_ip: str, port: int = CONTROL_PORT) -> None:
        self.base_url = f"http://{fabric_ip}:{port}/control/v1"

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

    def answers(self) -> bool:
        try:
            self._get("/roster")
        except PlatformError:
            return False
        return True

    def _get(self, path: str) -> dict[str, Any]:
        return self._send("GET", path)

    def _send(self, method: str, path: str) -> dict[str, Any]:
        url = self.base_url + path
        try:
            response = requests.request(method, url, timeout=TIMEOUT)
            response.raise_for_status()
            return cast(dict[str, Any], response.json())
        except (requests.RequestException, ValueError) as exc:
            raise PlatformError(f"fabric control API {url}: {exc}") from exc
