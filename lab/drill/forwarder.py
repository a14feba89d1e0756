"""The SSH forwarder of one trainee: a host port relayed to their VM's sshd.

Lab networks are internal Docker bridges (nothing published, nothing routed out), but the
host reaches every guest on its bridge, as ``snaplab ssh`` does. So a trainee's way in is
a small container on the host's network running :data:`RELAY` with the host image's own
Python: it listens on one host port and, for each connection, opens one to the guest's
address on port 22 and copies bytes both ways. It connects to that one address only and
never the other way round, so the guest gains no path out: a connection from a guest to
the host (this port included) is still dropped by the lab's ``INPUT`` rule
(:mod:`lab.provision.guest_reach`).

The container carries the lab's label (``snaplab.lab=<lab>``), so ``snaplab down`` and the
drill's end remove it with the lab; it runs as ``nobody`` with no capabilities, a
read-only root file system and small memory and process limits.
"""

from __future__ import annotations

import socket
import time

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from lab.errors import ProvisionFailed
from lab.provision.labels import LAB_LABEL, ROLE_LABEL, container_name, lab_labels
from lab.provision.ssh_guest import BANNER_PREFIX, SSH_PORT

ROLE = "ssh-forwarder"
TRAINEE_LABEL = "snaplab.trainee"
PORT_LABEL = "snaplab.forward.port"
TARGET_LABEL = "snaplab.forward.target"
START_SECONDS = 20.0
NOBODY = "65534:65534"
LISTENING = "listening"  # the relay's first line, once its socket is bound

# Runs in the forwarder container: python3 -c RELAY BIND PORT TARGET TARGET_PORT.
RELAY = r"""
import asyncio, sys
bind, port, target, target_port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])

async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()

async def handle(reader, writer):
    try:
        up_reader, up_writer = await asyncio.wait_for(
            asyncio.open_connection(target, target_port), 10)
    except (OSError, asyncio.TimeoutError):
        writer.close()
        return
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

async def main():
    server = await asyncio.start_server(handle, bind, port, reuse_address=True)
    print('listening', bind, port, 'for', target, target_port, flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


def forwarder_name(lab: str, trainee_id: str) -> str:
    return container_name(lab, f"ssh-{trainee_id}")


def free_port(bind: str, preferred: int | None = None) -> int:
    """``preferred`` when nothing listens there, else a port the kernel picks."""
    for candidate in (preferred, 0):
        if candidate is None:
            continue
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((bind, candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise ProvisionFailed(f"no free TCP port on {bind}")


def start_forwarder(
    client: docker.DockerClient,
    *,
    lab: str,
    trainee_id: str,
    image: str,
    target: str,
    bind: str,
    port: int,
) -> Container:
    """Start the relay and return once it listens."""
    name = forwarder_name(lab, trainee_id)
    remove_forwarders(client, lab, trainee_id)
    labels = lab_labels(
        lab, ROLE, **{TRAINEE_LABEL: trainee_id, PORT_LABEL: str(port), TARGET_LABEL: target}
    )
    try:
        container = client.containers.run(
            image,
            ["python3", "-c", RELAY, bind, str(port), target, str(SSH_PORT)],
            name=name,
            labels=labels,
            detach=True,
            network_mode="host",
            user=NOBODY,
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit="64m",
            pids_limit=32,
            restart_policy={"Name": "on-failure", "MaximumRetryCount": 3},
        )
    except APIError as exc:
        raise ProvisionFailed(f"could not start {name}: {exc.explanation}") from exc
    _wait_until_listening(container, port)
    return container


def _wait_until_listening(container: Container, port: int) -> None:
    """Until the relay says it listens. The guest's sshd need not answer yet: a VM the
    scenario shut down (guest-shutdown) is reached once the trainee starts it."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        container.reload()
        logs = container.logs().decode(errors="replace")
        if LISTENING in logs:
            return
        if container.status == "exited":
            break
        time.sleep(0.2)
    tail = container.logs(tail=3).decode(errors="replace").strip().splitlines()
    raise ProvisionFailed(
        f"{container.name}: the relay does not listen on port {port} "
        f"({tail[-1] if tail else 'it printed nothing'})"
    )


def greets(address: str, port: int, timeout: float = 5.0) -> bool:
    """True when an SSH server's greeting comes through ``address:port``."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(BANNER_PREFIX)
    except OSError:
        return False


def forwarders(
    client: docker.DockerClient, lab: str, trainee_id: str | None = None
) -> list[Container]:
    wanted = [f"{LAB_LABEL}={lab}", f"{ROLE_LABEL}={ROLE}"]
    if trainee_id is not None:
        wanted.append(f"{TRAINEE_LABEL}={trainee_id}")
    return list(client.containers.list(all=True, filters={"label": wanted}, ignore_removed=True))


def remove_forwarders(client: docker.DockerClient, lab: str, trainee_id: str | None = None) -> int:
    """Remove the lab's forwarders (one trainee's when named); returns how many."""
    removed = 0
    for container in forwarders(client, lab, trainee_id):
        try:
            container.remove(force=True)
            removed += 1
        except NotFound:
            continue
    return removed
