"""Create the containers of one lab: fabric, storage, guests and the ARM twin.

Every container carries the lab label and its role, and is created before it is
started so its configuration files (roster, TLS material) can be put in place first.
"""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import docker
from docker.errors import APIError
from docker.models.containers import Container

from lab.errors import ProvisionFailed
from lab.platform.roster import ROSTER_PATH, GuestEntry, Roster
from lab.provision.labels import (
    AGENT_LABEL,
    ARM_PORT_LABEL,
    ARM_TOKEN_LABEL,
    VM_LABEL,
    container_name,
    lab_labels,
    network_name,
)

GUEST_CPUS = 1.0
GUEST_MEMORY = "1g"
CGROUP_MOUNT = {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "ro"}}
SYSTEMD_TMPFS = {"/run": "rw,exec", "/run/lock": "rw", "/tmp": "rw,exec"}


def _create(
    client: docker.DockerClient,
    *,
    lab: str,
    part: str,
    image: str,
    labels: dict[str, str],
    ip: str | None = None,
    mac: str | None = None,
    command: list[str] | None = None,
    environment: dict[str, str] | None = None,
    hostname: str | None = None,
    host_config: dict[str, object],
) -> Container:
    api = client.api
    networking = None
    if ip is not None:
        networking = api.create_networking_config(
            {network_name(lab): api.create_endpoint_config(ipv4_address=ip)}
        )
    try:
        created = api.create_container(
            image,
            name=container_name(lab, part),
            hostname=hostname,
            labels=labels,
            command=command,
            environment=environment,
            mac_address=mac,
            networking_config=networking,
            host_config=api.create_host_config(**host_config),
        )
    except APIError as exc:
        raise ProvisionFailed(f"could not create {part} of lab {lab}: {exc.explanation}") from exc
    return client.containers.get(created["Id"])


def put_file(container: Container, path: Path, data: bytes, mode: int = 0o644) -> None:
    """Place one file (and its missing parent folders) in a created container."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for parent in reversed(path.relative_to("/").parents[:-1]):
            folder = tarfile.TarInfo(parent.as_posix())
            folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
            tar.addfile(folder)
        info = tarfile.TarInfo(path.relative_to("/").as_posix())
        info.size, info.mode, info.mtime = len(data), mode, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    container.client.api.put_archive(container.id, "/", buffer.getvalue())


def create_fabric(client: docker.DockerClient, roster: Roster, image: str) -> Container:
    lab = roster.lab
    volume = client.volumes.create(
        name=f"snaplab-{lab}-fabric", labels=lab_labels(lab, "fabric-data")
    )
    container = _create(
        client,
        lab=lab,
        part="fabric",
        image=image,
        labels=lab_labels(lab, "fabric"),
        ip=roster.fabric_ip,
        hostname="fabric",
        # The lab's clock, not the caller's: labs at different scales share one process.
        environment={"SNAPLAB_TIME_SCALE": repr(roster.time_scale)},
        host_config={
            "network_mode": network_name(lab),
            "cap_add": ["NET_ADMIN", "NET_RAW"],
            "binds": {volume.name: {"bind": "/var/lib/snaplab", "mode": "rw"}},
        },
    )
    put_file(container, ROSTER_PATH, roster.to_json().encode())
    return container


def create_storage(client: docker.DockerClient, lab: str, ip: str, image: str) -> Container:
    volume = client.volumes.create(
        name=f"snaplab-{lab}-storage", labels=lab_labels(lab, "storage-data")
    )
    return _create(
        client,
        lab=lab,
        part="storage",
        image=image,
        labels=lab_labels(lab, "storage"),
        ip=ip,
        hostname="storage",
        host_config={
            "network_mode": network_name(lab),
            "binds": {volume.name: {"bind": "/data", "mode": "rw"}},
        },
    )


def create_guest(client: docker.DockerClient, lab: str, guest: GuestEntry, image: str) -> Container:
    return _create(
        client,
        lab=lab,
        part=guest.name,
        image=image,
        labels=lab_labels(lab, "guest", **{VM_LABEL: guest.name, AGENT_LABEL: guest.agent_version}),
        ip=guest.ip,
        mac=guest.mac,
        hostname=guest.name,
        environment={"container": "docker"},
        host_config={
            "network_mode": network_name(lab),
            # SYS_BOOT: the guest's reboot(2) ends only its own PID namespace, with SIGINT
            # for a halt and SIGHUP for a reboot, so the host tells them apart
            # (lab.platform.host_power). Docker's seccomp profile still refuses kexec.
            "cap_add": ["NET_ADMIN", "NET_RAW", "SYS_BOOT"],
            "tmpfs": SYSTEMD_TMPFS,
            "binds": CGROUP_MOUNT,
            "nano_cpus": int(GUEST_CPUS * 1e9),
            "mem_limit": GUEST_MEMORY,
        },
    )


def create_arm_twin(
    client: docker.DockerClient,
    *,
    lab: str,
    image: str,
    fabric_ip: str,
    port: int,
    token: str,
    tls_dir: Path,
) -> Container:
    container = _create(
        client,
        lab=lab,
        part="arm",
        image=image,
        labels=lab_labels(lab, "arm", **{ARM_PORT_LABEL: str(port), ARM_TOKEN_LABEL: token}),
        command=["python3", "-m", "lab.platform.armtwin_main"],
        environment={
            "SNAPLAB_FABRIC_URL": f"http://{fabric_ip}:8080",
            "SNAPLAB_ARM_PORT": str(port),
            "SNAPLAB_ARM_TOKEN": token,
            "SNAPLAB_TLS_CERT": "/etc/snaplab/tls/server.pem",
            "SNAPLAB_TLS_KEY": "/etc/snaplab/tls/server.key",
        },
        host_config={
            "network_mode": "host",
            "binds": {"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}},
        },
    )
    for name, mode in (("server.pem", 0o644), ("server.key", 0o600)):
        put_file(container, Path("/etc/snaplab/tls") / name, (tls_dir / name).read_bytes(), mode)
    return container
