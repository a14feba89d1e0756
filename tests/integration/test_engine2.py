"""A second Docker engine on this machine (tests/engine2.py), proved against real labs.

What must hold for labs placed on two engines of one kernel: starting and stopping the
second engine leaves the first engine's running lab as it was (its rules in Docker's
chains and in ``DOCKER-USER``, its agent Ready, its guest still walled in); the second
engine's own lab networks get Docker's isolation rules; and lab images copied from
the first engine run there.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.errors import ImageNotFound

from lab.platform.roster import WIRESERVER_PORT, Roster
from lab.provision import images
from lab.provision import lab as labs
from lab.provision.image_copy import copy_images
from lab.provision.labels import LAB_LABEL, bridge_name, rule_comment
from lab.provision.spec import lab_spec
from tests import docker_chains
from tests import engine2 as second_engine
from tests.integration.conftest import RUN_ID

pytestmark = pytest.mark.integration

SNAPLAB = Path(sys.executable).with_name("snaplab")
# Not the session's engine 2: this test starts and stops an engine of its own while a
# lab runs on the first one, whether or not the session's second engine is up.
CYCLED = second_engine.Layout("snaplab-engine3")
PROBE = (
    "import json, socket, sys\n"
    "out = {}\n"
    "for host, port in json.loads(sys.argv[1]):\n"
    "    try:\n"
    "        socket.create_connection((host, port), timeout=3).close()\n"
    "        out[f'{host}:{port}'] = 'connected'\n"
    "    except OSError as exc:\n"
    "        out[f'{host}:{port}'] = type(exc).__name__\n"
    "print(json.dumps(out))\n"
)


@pytest.fixture
def engine1_lab(docker_client: docker.DockerClient) -> Iterator[Roster]:
    name = f"e7s{RUN_ID}"
    roster = labs.up(docker_client, lab_spec(name, ("vm1",)), lambda _: None)
    try:
        yield roster
    finally:
        labs.down(docker_client, name)


@pytest.fixture
def host_listener() -> Iterator[tuple[str, int]]:
    """A TCP listener on the host's first non-loopback address, outside every lab subnet."""
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    address = next(
        line.split()[3].split("/")[0]
        for line in out.splitlines()
        if line.split()[1] == "eth0" or not line.split()[3].startswith(("127.", "10.213."))
    )
    server = socket.create_server((address, 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                server.accept()[0].close()
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield address, server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()


def connects(container: str, targets: list[tuple[str, int]]) -> dict[str, str]:
    done = subprocess.run(
        ["docker", "exec", container, "python3", "-c", PROBE, json.dumps(targets)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(done.stdout))


def lab_rules(rules: docker_chains.Rules, lab: str) -> dict[tuple[str, str], list[tuple[str, ...]]]:
    """The rules that belong to one lab: its comment (snaplab's) or its bridge (Docker's)."""
    marks = (rule_comment(lab), bridge_name(lab))
    return {
        key: [rule for rule in chain if any(mark in rule for mark in marks)]
        for key, chain in rules.items()
        if any(any(mark in rule for mark in marks) for rule in chain)
    }


def test_the_first_engines_lab_keeps_working_when_a_second_engine_starts_and_stops(
    docker_client: docker.DockerClient,
    engine1_lab: Roster,
    host_listener: tuple[str, int],
) -> None:
    lab = engine1_lab.lab
    guest = engine1_lab.guests[0].container
    before = docker_chains.snapshot()
    ours = lab_rules(before, lab)
    assert ("filter", "DOCKER-ISOLATION-STAGE-1") in ours, ours
    assert len(ours[("filter", "DOCKER-USER")]) >= 3, ours
    # The listener answers the host, so a refusal from the guest below is the wall.
    socket.create_connection(host_listener, timeout=3).close()

    with second_engine.running(docker_client, layout=CYCLED) as engine:
        assert engine.client.ping()
        while_up = docker_chains.snapshot()
    after = docker_chains.snapshot()

    assert lab_rules(while_up, lab) == ours
    assert lab_rules(after, lab) == ours
    # Nothing the first engine had in Docker's own chains is gone (rules of networks
    # other helpers removed meanwhile aside: their bridges no longer exist).
    alive = docker_chains.interfaces() | docker_chains.bridges(docker_client)
    lost = [
        r
        for r in docker_chains.missing(before, after)
        if all(n in alive for n in (_value(r.rule, "-i"), _value(r.rule, "-o")) if n)
    ]
    assert lost == [], [str(r) for r in lost]

    status = subprocess.run(
        [str(SNAPLAB), "status", lab, "--json"], capture_output=True, text=True, check=True
    )
    vm = json.loads(status.stdout)["vms"][0]
    assert (vm["power_state"], vm["agent"]["status"]) == ("running", "Ready"), vm
    results = connects(
        guest,
        [(engine1_lab.fabric_ip, WIRESERVER_PORT), host_listener, ("1.1.1.1", 80)],
    )
    assert results.pop(f"{engine1_lab.fabric_ip}:{WIRESERVER_PORT}") == "connected"
    assert "connected" not in results.values(), results


def _value(rule: tuple[str, ...], option: str) -> str | None:
    return rule[rule.index(option) + 1] if option in rule else None


def test_a_lab_network_on_the_second_engine_gets_dockers_isolation_rules(
    engine2: second_engine.Engine2,
) -> None:
    ipam = docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.214.250.0/24", gateway="10.214.250.1")]
    )
    bridge = "snl-e7isolate"
    network = engine2.client.networks.create(
        "e7-isolation",
        driver="bridge",
        internal=True,
        ipam=ipam,
        labels={LAB_LABEL: "e7-isolation"},
        options={"com.docker.network.bridge.name": bridge},
    )
    try:
        stage1 = docker_chains.snapshot()[("filter", "DOCKER-ISOLATION-STAGE-1")]
        assert ("!", "-d", "10.214.250.0/24", "-i", bridge, "-j", "DROP") in stage1, stage1
        assert ("!", "-s", "10.214.250.0/24", "-o", bridge, "-j", "DROP") in stage1, stage1
    finally:
        network.remove()
    stage1 = docker_chains.snapshot()[("filter", "DOCKER-ISOLATION-STAGE-1")]
    assert not [rule for rule in stage1 if bridge in rule], stage1


def test_a_copied_image_runs_on_the_second_engine(
    docker_client: docker.DockerClient, engine2: second_engine.Engine2
) -> None:
    wanted = [
        images.host_recipe().tag,
        images.storage_recipe().tag,
        images.guest_recipe("2.7.3.0").tag,
    ]
    tag = min(wanted, key=lambda t: int(docker_client.images.get(t).attrs["Size"]))
    with contextlib.suppress(ImageNotFound):  # so the copy below really happens
        engine2.client.images.remove(tag, force=True)
    lines: list[str] = []
    started = time.monotonic()
    copied = copy_images(docker_client, engine2.client, [tag], lines.append)
    print(f"{lines[0]} (wall {time.monotonic() - started:.1f} s)")
    assert [c.tag for c in copied] == [tag]
    assert engine2.client.images.get(tag).id == docker_client.images.get(tag).id
    assert copy_images(docker_client, engine2.client, [tag], lines.append) == []
    output = engine2.client.containers.run(
        tag,
        entrypoint=["cat", "/etc/os-release"],
        command=[],
        labels={LAB_LABEL: "e7-copy"},
        network_mode="none",
        remove=True,
    )
    assert b"Debian" in output
    assert engine2.client.containers.list(all=True, filters={"label": f"{LAB_LABEL}=e7-copy"}) == []
