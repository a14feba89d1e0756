"""Create the containers of one lab: fabric, storage, guests and the ARM twin.

Every container carries the lab label and its role, and is created before it is
started so its configuration files (roster, TLS material) can be put in place first.
"""

from __future__ import annotations

import io
import secrets
import tarfile
import time
from pathlib import Path

import docker
from docker.errors import APIError
from docker.models.containers import Container

from lab.errors import ProvisionFailed
from lab.platform import guest_cgroups
from lab.platform.control_auth import TOKEN_ENV
from lab.platform.roster import CONTROL_PORT, ROSTER_PATH, GuestEntry, Roster
from lab.provision import engines
from lab.provision.labels import (
    AGENT_LABEL,
    ARM_PORT_LABEL,
    ARM_TOKEN_LABEL,
    CONTROL_TOKEN_LABEL,
    LAB_LABEL,
    ROLE_LABEL,
    VM_LABEL,
    container_name,
    lab_labels,
    network_name,
)

# A guest's limits (Standard_B1s: 1 vCPU, 1 GiB); the roster carries them to the platform,
# which names the VM's Azure size after them (lab.platform.arm.compute_sizes).
GUEST_CPUS = 1.0
GUEST_MEMORY_MIB = 1024
# Guests do not get this bind (only bench_platform's bare-run floor does): its hierarchies
# stay the host's, writable; a guest gets only its own cgroups (lab.platform.guest_cgroups).
CGROUP_MOUNT = {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "ro"}}
# Docker's own masked paths, and /proc/pressure: in its own cgroup namespace a guest's
# cgroup is its root, as on a VM, but the kernel's pressure files there are the host's.
GUEST_MASKED_PATHS = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/proc/pressure",
]
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
    entrypoint: list[str] | None = None,
    masked_paths: list[str] | None = None,
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
            entrypoint=entrypoint,
            environment=environment,
            mac_address=mac,
            networking_config=networking,
            host_config=_host_config(api, host_config, masked_paths),
        )
    except APIError as exc:
        raise ProvisionFailed(f"could not create {part} of lab {lab}: {exc.explanation}") from exc
    return client.containers.get(created["Id"])


def _host_config(
    api: docker.APIClient, options: dict[str, object], masked_paths: list[str] | None
) -> dict[str, object]:
    config: dict[str, object] = api.create_host_config(**options)
    if masked_paths is not None:  # docker-py has no argument for it; the API has
        config["MaskedPaths"] = masked_paths
    return config


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
    """The fabric, with a new random control token in its environment and its label
    (the host's tools read the label; see :mod:`lab.platform.control_auth`)."""
    lab = roster.lab
    token = secrets.token_urlsafe(32)
    volume = client.volumes.create(
        name=f"snaplab-{lab}-fabric", labels=lab_labels(lab, "fabric-data")
    )
    container = _create(
        client,
        lab=lab,
        part="fabric",
        image=image,
        labels=lab_labels(lab, "fabric", **{CONTROL_TOKEN_LABEL: token}),
        ip=roster.fabric_ip,
        hostname="fabric",
        # The lab's clock, not the caller's: labs at different scales share one process.
        environment={"SNAPLAB_TIME_SCALE": repr(roster.time_scale), TOKEN_ENV: token},
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
        # systemd starts once the host has opened the guest's own cgroups to it.
        entrypoint=guest_cgroups.ENTRYPOINT,
        command=guest_cgroups.COMMAND,
        masked_paths=GUEST_MASKED_PATHS,
        host_config={
            "network_mode": network_name(lab),
            # SYS_BOOT: the guest's reboot(2) ends only its own PID namespace, with SIGINT
            # for a halt and SIGHUP for a reboot, so the host tells them apart
            # (lab.platform.host_power). Docker's seccomp profile still refuses kexec.
            # NET_ADMIN: dhclient and the guest's own iptables. The rest is Docker's default
            # set less MKNOD (nothing in a guest makes device nodes; systemd's
            # PrivateDevices= bind-mounts them instead) and SETFCAP (nothing sets file
            # capabilities; a package's postinst falls back to setuid); each capability's
            # use is listed in tests/integration/test_drill_leaks.py, which checks PID 1
            # holds exactly those.
            "cap_add": ["NET_ADMIN", "NET_RAW", "SYS_BOOT"],
            "cap_drop": ["MKNOD", "SETFCAP"],
            "tmpfs": SYSTEMD_TMPFS,
            "cgroupns": "private",
            "nano_cpus": int(guest.cpus * 1e9),
            "mem_limit": f"{guest.memory_mib}m",
        },
    )


def open_guest(client: docker.DockerClient, container: str) -> None:
    """Let a just-started guest boot: open its own cgroups to its systemd."""
    try:
        guest_cgroups.open_cgroups(client.api, container)
    except (guest_cgroups.CgroupError, APIError, OSError) as exc:
        raise ProvisionFailed(str(exc)) from exc


def fabric_token(client: docker.DockerClient, lab: str) -> str:
    """The control token of the lab's fabric, from its container's label."""
    found = client.containers.list(
        all=True, filters={"label": [f"{LAB_LABEL}={lab}", f"{ROLE_LABEL}=fabric"]}
    )
    token = found[0].labels.get(CONTROL_TOKEN_LABEL) if found else None
    if not token:
        raise ProvisionFailed(f"lab {lab}'s fabric has no control token label")
    return str(token)


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
    engine_socket = engines.engine_of(client).socket_path
    container = _create(
        client,
        lab=lab,
        part="arm",
        image=image,
        labels=lab_labels(lab, "arm", **{ARM_PORT_LABEL: str(port), ARM_TOKEN_LABEL: token}),
        command=["python3", "-m", "lab.platform.arm.main"],
        environment={
            "SNAPLAB_FABRIC_URL": f"http://{fabric_ip}:{CONTROL_PORT}",
            "SNAPLAB_FABRIC_TOKEN": fabric_token(client, lab),
            "SNAPLAB_ARM_PORT": str(port),
            "SNAPLAB_ARM_TOKEN": token,
            "SNAPLAB_TLS_CERT": "/etc/snaplab/tls/server.pem",
            "SNAPLAB_TLS_KEY": "/etc/snaplab/tls/server.key",
        },
        host_config={
            "network_mode": "host",
            # Its own engine's socket (the lab may be on a second engine of this machine).
            "binds": {engine_socket: {"bind": "/var/run/docker.sock", "mode": "rw"}},
            # To open a (re)started guest's cgroups with nsenter (lab.platform.guest_cgroups);
            # NET_ADMIN: the VMs' NSG rules in the host's DOCKER-USER chain, from the host's
            # network namespace (lab.platform.arm.network_firewall).
            "pid_mode": "host",
            "cap_add": ["SYS_ADMIN", "SYS_PTRACE", "NET_ADMIN"],
        },
    )
    for name, mode in (("server.pem", 0o644), ("server.key", 0o600)):
        put_file(container, Path("/etc/snaplab/tls") / name, (tls_dir / name).read_bytes(), mode)
    return container
