"""The fabric over real sockets on 127.0.0.1, and its entry point as a process."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

from lab.extension.protocol import HANDLER_NAME, HANDLER_VERSIONS
from lab.extension.run_command_package import HANDLER_NAME as RUN_COMMAND_HANDLER
from lab.platform.backup.job import TAKE_SNAPSHOT, new_job, start_subtask
from lab.platform.backup.store import BackupStore
from lab.platform.control_auth import TOKEN_ENV, bearer
from lab.platform.fabric_main import (
    RequestLogger,
    add_loopback_address,
    build_apps,
    publish_extension_packages,
)
from lab.platform.guest_state import Fabric
from lab.platform.roster import GuestEntry, Roster
from tests.unit.fabric_samples import block_envelope, status_bytes

REPO = Path(__file__).resolve().parents[2]
CONTROL_TOKEN = "unit-control-token-" + "x" * 24
AUTH = bearer(CONTROL_TOKEN)
LOCAL = "127.0.0.1"


def local_roster() -> Roster:
    return Roster(
        lab="sock",
        subnet="127.0.0.0/8",
        fabric_ip=LOCAL,
        storage_ip=LOCAL,
        guests=(GuestEntry("vm1", LOCAL, "02:00:00:00:00:01", "2.7.3.0", "c1"),),
    )


@pytest.fixture
def servers() -> Iterator[dict[str, int]]:
    fabric = Fabric(local_roster(), stale_after_seconds=20.0)
    running: list[BaseWSGIServer] = []
    ports: dict[str, int] = {}
    for name, app in build_apps(fabric).items():
        server = make_server(LOCAL, 0, RequestLogger(app, name), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        running.append(server)
        ports[name] = server.server_port
    yield ports
    for server in running:
        server.shutdown()
        server.server_close()


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(LOCAL, port, timeout=10)
    try:
        # What the agent sends on every call.
        all_headers = {
            "Connection": "close",
            "User-Agent": "WALinuxAgent/2.7.3.0",
            **(headers or {}),
        }
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_agent_cycle_over_sockets(servers: dict[str, int]) -> None:
    wire, hgap, control = servers["wireserver"], servers["hostplugin"], servers["control"]
    assert request(wire, "GET", "/?comp=versions")[0] == 200
    status, goal = request(
        wire, "GET", "/machine/?comp=goalstate", headers={"x-ms-version": "2012-11-30"}
    )
    assert status == 200 and b"<Incarnation>1</Incarnation>" in goal
    assert request(hgap, "GET", "/vmSettings")[0] == 404
    assert json.loads(request(hgap, "GET", "/versions")[1]) == ["2015-09-01"]
    health = b"<Health><GoalStateIncarnation>1</GoalStateIncarnation><State>Ready</State></Health>"
    assert request(wire, "POST", "/machine?comp=health", health)[0] == 200
    put = request(
        hgap, "PUT", "/status", block_envelope(status_bytes()), {"Content-type": "application/json"}
    )
    assert put[0] == 200
    vm = json.loads(request(control, "GET", "/control/v1/vms/vm1")[1])
    assert vm["agent"]["status"] == "Ready"
    assert vm["health"]["state"] == "Ready"
    bumped = json.loads(request(control, "POST", "/control/v1/vms/vm1/incarnation")[1])
    assert bumped["incarnation"] == "2"
    assert b"<Incarnation>2</Incarnation>" in request(wire, "GET", "/machine/?comp=goalstate")[1]
    assert request(hgap, "PUT", "/status", b"{broken")[0] == 400
    assert request(hgap, "GET", "/health")[0] == 200  # still serving


def test_request_logger_logs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("204 No Content", [])
        return [b""]

    logged = RequestLogger(app, "wireserver")
    environ = {
        "REMOTE_ADDR": "10.0.0.4",
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/machine/",
        "QUERY_STRING": "comp=goalstate",
    }
    with caplog.at_level("INFO", logger="snaplab.fabric.requests"):
        logged(environ, lambda status, headers, exc_info=None: None)  # type: ignore[arg-type]
    assert caplog.messages == ["wireserver 10.0.0.4 GET /machine/?comp=goalstate 204"]


def test_add_loopback_address_tolerates_exists() -> None:
    def ran(code: int, stderr: str) -> Any:
        return lambda *a, **k: subprocess.CompletedProcess(a[0], code, "", stderr)

    assert add_loopback_address("169.254.169.254", run=ran(0, ""))
    assert add_loopback_address("169.254.169.254", run=ran(2, "RTNETLINK answers: File exists"))
    assert not add_loopback_address("169.254.169.254", run=ran(2, "Operation not permitted"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOCAL, 0))
        port: int = probe.getsockname()[1]
        return port


def test_publish_writes_and_serves_every_handler_version(tmp_path: Path) -> None:
    fabric = Fabric(local_roster(), stale_after_seconds=20.0)
    urls = publish_extension_packages(fabric, tmp_path / "artifacts")
    assert urls == [
        fabric.artifacts.manifest_url(HANDLER_NAME),
        fabric.artifacts.manifest_url(RUN_COMMAND_HANDLER),
    ]
    manifest = fabric.artifacts.get(f"extensions/{HANDLER_NAME}/manifest.xml")
    assert manifest is not None
    for version in HANDLER_VERSIONS:
        assert f"<Version>{version}</Version>".encode() in manifest.data
        assert fabric.artifacts.get(f"extensions/{HANDLER_NAME}/{HANDLER_NAME}__{version}.zip")


def test_publish_survives_an_unwritable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    fabric = Fabric(local_roster(), stale_after_seconds=20.0)
    assert publish_extension_packages(fabric, blocker / "artifacts") == []


def test_entry_point_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    roster_path = tmp_path / "roster.json"
    roster_path.write_text(local_roster().to_json())
    ports = [free_port() for _ in range(3)]
    # A job the previous fabric left running; and storage that never answers.
    db = tmp_path / "backup.sqlite"
    store = BackupStore(db)
    started = datetime.now(UTC)
    store.save_job(start_subtask(new_job("left-over", "vm1", started), TAKE_SNAPSHOT, started))
    store.close()
    env = {**os.environ, "PYTHONPATH": str(REPO), TOKEN_ENV: CONTROL_TOKEN}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lab.platform.fabric_main",
            f"--roster={roster_path}",
            f"--bind={LOCAL}",
            f"--wireserver-port={ports[0]}",
            f"--hostplugin-port={ports[1]}",
            f"--control-port={ports[2]}",
            f"--log-dir={tmp_path / 'log'}",
            f"--artifacts={tmp_path / 'artifacts'}",
            f"--cert-dir={tmp_path / 'certs'}",
            f"--backup-db={db}",
            f"--storage-url=http://{LOCAL}:{free_port()}/devstoreaccount1",
            "--no-dhcp",
            "--no-imds-address",
            "--no-firewall",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if request(ports[2], "GET", "/control/v1/health", headers=AUTH)[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, process.stdout.read() if process.stdout else b""
            assert time.monotonic() < deadline, "fabric did not come up"
            time.sleep(0.1)
        # The control API answers only the lab's token (ARM's 401 shape otherwise).
        for headers in ({}, {"Authorization": "Bearer guessed-" + "0" * 40}):
            status, body = request(ports[2], "POST", "/control/v1/vms/vm1/backups", None, headers)
            assert status == 401 and "error" in json.loads(body)
        assert request(ports[0], "GET", "/?comp=versions")[0] == 200
        assert request(ports[1], "GET", "/versions")[0] == 200
        status, manifest = request(
            ports[0], "GET", f"/artifacts/extensions/{HANDLER_NAME}/manifest.xml"
        )
        assert status == 200
        assert all(f"<Version>{v}</Version>".encode() in manifest for v in HANDLER_VERSIONS)
        storage = json.loads(request(ports[2], "GET", "/control/v1/storage", headers=AUTH)[1])
        assert storage["ready"] is False
        left_over = json.loads(
            request(ports[2], "GET", "/control/v1/jobs/left-over", headers=AUTH)[1]
        )
        assert left_over["status"] == "Failed"
        assert left_over["error_code"] == "BackUpOperationFailed"
        refused = json.loads(
            request(ports[2], "POST", "/control/v1/vms/vm1/backups", headers=AUTH)[1]
        )
        assert refused["error_code"] == "UserErrorGuestAgentStatusUnavailable"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    text = output.decode()
    assert "wireserver 127.0.0.1 GET /?comp=versions 200" in text
    log_file = (tmp_path / "log" / "fabric.log").read_text()
    assert "hostplugin 127.0.0.1 GET /versions 200" in log_file
    assert "fabric stopped" in log_file
