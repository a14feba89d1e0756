"""A redeploy on the platform side: the WireServer moves, DHCP follows, the old host is gone."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from lab.platform.documents import HandlerSpec
from lab.platform.fabric_main import DnsmasqSupervisor
from lab.platform.guest_state import Fabric
from lab.platform.redeploy import (
    RedeployError,
    RedeployRoutes,
    WireServerMover,
    new_host_address,
    reject_rule,
)
from tests.unit.fabric_samples import VM1_IP, make_roster

HANDLER = "Microsoft.Azure.RecoveryServices.VMSnapshotLinux"


class Recorder:
    """Stands in for subprocess.run: records each command, answers as told."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.fail: dict[str, str] = {}

    def __call__(self, argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        stderr = self.fail.get(argv[0], "")
        return subprocess.CompletedProcess(argv, 2 if stderr else 0, "", stderr)


def _fabric(tmp_path: Path) -> tuple[Fabric, Path]:
    fabric = Fabric(make_roster(), stale_after_seconds=20.0)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / f"{HANDLER}__1.0.91.0.zip").write_bytes(b"PK zip")
    fabric.artifacts.load_directory(artifacts)
    spec = HandlerSpec(HANDLER, "1.0.91.0", fabric.artifacts.manifest_url(HANDLER), seq_no=3)
    fabric.guest("vm1").set_handler(spec)  # type: ignore[union-attr]
    return fabric, artifacts


@pytest.fixture
def moved(tmp_path: Path) -> tuple[WireServerMover, Recorder, list[str]]:
    fabric, artifacts = _fabric(tmp_path)
    run = Recorder()
    dhcp: list[str] = []
    return WireServerMover(fabric, artifacts, dhcp.append, run=run), run, dhcp


def test_default_new_address_is_below_the_guests() -> None:
    assert new_host_address("10.213.3.0/24") == "10.213.3.9"


def test_move_rebases_everything_the_fabric_hands_out(
    moved: tuple[WireServerMover, Recorder, list[str]],
) -> None:
    mover, run, dhcp = moved
    fabric = mover.fabric
    vm1 = fabric.guest("vm1")
    assert vm1 is not None
    before = int(vm1.incarnation)

    answer = mover.move("vm1", "10.199.0.9")

    assert answer == {
        "vm": "vm1",
        "wireserver_ip": "10.199.0.9",
        "previous_wireserver_ip": "10.199.0.2",
    }
    assert ["ip", "addr", "add", "10.199.0.9/24", "dev", "eth0"] in run.calls
    assert dhcp == ["10.199.0.9"]
    assert fabric.base_url == "http://10.199.0.9"
    assert fabric.artifacts.manifest_url(HANDLER).startswith("http://10.199.0.9/artifacts/")
    manifest = fabric.artifacts.get(f"extensions/{HANDLER}/manifest.xml")
    assert manifest is not None and b"http://10.199.0.9/" in manifest.data
    assert b"10.199.0.2" not in manifest.data
    (handler,) = vm1.handlers()
    assert handler.manifest_url.startswith("http://10.199.0.9/") and handler.seq_no == 3
    assert int(vm1.incarnation) == before + 1  # a new goal state, as after a redeploy
    urls = fabric.goal_state_urls(vm1.goal_state())
    assert urls.extensions_config.startswith("http://10.199.0.9/machine/")
    assert fabric.status_blob_url(vm1).startswith("http://10.199.0.9/")
    assert all(u.startswith("http://10.199.0.9/") for u in fabric.ga_family_manifests.values())
    assert ["iptables", "-w", "-I", "INPUT", *reject_rule(VM1_IP, "10.199.0.2", "vm1")] in (
        run.calls
    )


def test_reject_rule_hides_only_the_wireserver_ports_from_that_vm() -> None:
    rule = " ".join(reject_rule("10.199.0.11", "10.199.0.2", "vm1"))
    assert "-s 10.199.0.11/32 -d 10.199.0.2/32 -p tcp" in rule
    assert "--dports 80,32526" in rule
    assert "--comment snaplab-redeploy:vm1" in rule
    assert rule.endswith("-j REJECT --reject-with icmp-host-unreachable")


def test_undo_restores_the_lab_and_removes_what_the_move_added(
    moved: tuple[WireServerMover, Recorder, list[str]],
) -> None:
    mover, run, dhcp = moved
    mover.move("vm1", "10.199.0.9")
    run.calls.clear()

    answer = mover.undo("vm1")

    assert answer["wireserver_ip"] == "10.199.0.2"
    assert answer["previous_wireserver_ip"] == "10.199.0.9"
    assert dhcp == ["10.199.0.9", "10.199.0.2"]
    assert mover.fabric.base_url == "http://10.199.0.2"
    assert ["iptables", "-w", "-D", "INPUT", *reject_rule(VM1_IP, "10.199.0.2", "vm1")] in (
        run.calls
    )
    assert ["ip", "addr", "del", "10.199.0.9/24", "dev", "eth0"] in run.calls
    run.calls.clear()
    mover.undo("vm1")  # nothing left to undo
    assert run.calls == []


def test_a_second_move_hides_every_earlier_address(
    moved: tuple[WireServerMover, Recorder, list[str]],
) -> None:
    mover, run, _ = moved
    mover.move("vm1", "10.199.0.9")
    mover.move("vm1", "10.199.0.8")
    inserted = [c for c in run.calls if c[:4] == ["iptables", "-w", "-I", "INPUT"]]
    hidden = {c[c.index("-d") + 1] for c in inserted[-2:]}
    assert hidden == {"10.199.0.2/32", "10.199.0.9/32"}
    deleted = [c for c in run.calls if c[:4] == ["iptables", "-w", "-D", "INPUT"]]
    assert len(deleted) == 1  # the first move's rule, replaced


@pytest.mark.parametrize(
    ("vm", "address"),
    [
        ("vm9", "10.199.0.9"),  # no such VM
        ("vm1", "10.200.0.9"),  # another subnet
        ("vm1", "10.199.0.3"),  # storage
        ("vm1", "10.199.0.12"),  # another guest
        ("vm1", "10.199.0.1"),  # the gateway
        ("vm1", "10.199.0.255"),  # broadcast
        ("vm1", "nine"),
    ],
)
def test_bad_moves_are_refused(
    moved: tuple[WireServerMover, Recorder, list[str]], vm: str, address: str
) -> None:
    mover, run, dhcp = moved
    with pytest.raises(RedeployError):
        mover.move(vm, address)
    assert run.calls == [] and dhcp == []


def test_a_failing_command_is_an_error(
    moved: tuple[WireServerMover, Recorder, list[str]],
) -> None:
    mover, run, _ = moved
    run.fail["iptables"] = "iptables: Permission denied"
    with pytest.raises(RedeployError, match="Permission denied"):
        mover.move("vm1", "10.199.0.9")
    run.fail = {"ip": "RTNETLINK answers: File exists"}  # the address is already there: fine
    mover.move("vm1", "10.199.0.8")


def _routes(moved: tuple[WireServerMover, Recorder, list[str]]) -> Client:
    def inner(environ: Any, start_response: Any) -> Any:
        return Response("control", status=200)(environ, start_response)

    return Client(RedeployRoutes(inner, moved[0]))


def test_routes_move_and_move_back(moved: tuple[WireServerMover, Recorder, list[str]]) -> None:
    client = _routes(moved)
    posted = client.post("/control/v1/vms/vm1/redeploy", json={})
    assert posted.status_code == 200
    assert json.loads(posted.data)["wireserver_ip"] == "10.199.0.9"
    named = client.post("/control/v1/vms/vm1/redeploy", json={"wireserver_ip": "10.199.0.8"})
    assert json.loads(named.data)["previous_wireserver_ip"] == "10.199.0.9"
    deleted = client.delete("/control/v1/vms/vm1/redeploy")
    assert deleted.status_code == 200
    assert json.loads(deleted.data)["wireserver_ip"] == "10.199.0.2"


def test_routes_refuse_bad_requests(moved: tuple[WireServerMover, Recorder, list[str]]) -> None:
    client = _routes(moved)
    assert client.post("/control/v1/vms/vm9/redeploy", json={}).status_code == 404
    assert client.post("/control/v1/vms/vm1/redeploy", data=b"{").status_code == 400
    assert client.post("/control/v1/vms/vm1/redeploy", json=[1]).status_code == 400
    bad_type = client.post("/control/v1/vms/vm1/redeploy", json={"wireserver_ip": 9})
    assert bad_type.status_code == 400
    outside = client.post("/control/v1/vms/vm1/redeploy", json={"wireserver_ip": "8.8.8.8"})
    assert outside.status_code == 400 and "error" in json.loads(outside.data)
    refused = client.get("/control/v1/vms/vm1/redeploy")
    assert refused.status_code == 405 and "POST" in refused.headers["Allow"]


def test_routes_pass_everything_else_on(moved: tuple[WireServerMover, Recorder, list[str]]) -> None:
    client = _routes(moved)
    for path in ("/control/v1/vms/vm1", "/control/v1/vms/vm1/backups", "/control/v1/health"):
        assert client.get(path).data == b"control"


def test_supervisor_restarts_at_once_with_a_new_argv(tmp_path: Path) -> None:
    """dnsmasq is re-rendered after a move: the supervisor runs the new command line."""
    marker = tmp_path / "ran"
    script = "import sys, time; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n'); time.sleep(60)"
    stop = threading.Event()
    supervisor = DnsmasqSupervisor(
        [sys.executable, "-c", script, str(marker), "first"], stop, name="fake"
    )
    supervisor.start()
    try:
        _wait_for(lambda: marker.exists() and "first" in marker.read_text())
        started = time.monotonic()
        supervisor.restart_with([sys.executable, "-c", script, str(marker), "second"])
        _wait_for(lambda: "second" in marker.read_text())
        assert time.monotonic() - started < 3.0  # no crash back-off
    finally:
        stop.set()
        supervisor.terminate()
        supervisor.thread.join(timeout=10)


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
