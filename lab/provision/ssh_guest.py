"""The guest's side of SSH access: the admin's key in, sshd up, its host key out.

An Azure VM deployed with an SSH key has an admin account (``azureuser``) whose
``~/.ssh/authorized_keys`` holds the deployment's public key (``.ssh`` 0700, the file 0600,
both the user's) and who may ``sudo`` without a password. The guest image has the account
and the sudoers entry; the lab's key is put in at start, before the guest boots, so no two
labs share one. sshd makes its host key at first boot (the image carries none), and the
host reads it out of band — through Docker, not over the network — for ``known_hosts``.
"""

from __future__ import annotations

import io
import socket
import tarfile
import time
from collections.abc import Sequence
from pathlib import PurePosixPath

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from lab.errors import ProvisionFailed
from lab.platform.roster import GuestEntry, Roster
from lab.provision.ssh_keys import host_key, lab_ssh_files, write_known_hosts

ADMIN_USER = "azureuser"
SSH_PORT = 22
HOST_KEY_PATH = "/etc/ssh/ssh_host_ed25519_key.pub"
BANNER_PREFIX = b"SSH-2.0-"
POLL_SECONDS = 0.2
PROBE_SECONDS = 1.0


def install_admin_key(container: Container, public_key: str, user: str = ADMIN_USER) -> None:
    """Put ``public_key`` in ``user``'s ``authorized_keys`` in a created guest.

    The account's uid, gid and home come from the image's own ``/etc/passwd``, so the
    files are the user's as the provisioning agent leaves them.
    """
    passwd = read_file(container, "/etc/passwd").decode(errors="replace")
    uid, gid, home = account(passwd, user, container.name)
    folder = PurePosixPath(home, ".ssh")
    data = f"{public_key.strip()}\n".encode()
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        entries = (
            (folder, tarfile.DIRTYPE, 0o700, b""),
            (folder / "authorized_keys", tarfile.REGTYPE, 0o600, data),
        )
        for path, kind, mode, content in entries:
            info = tarfile.TarInfo(path.relative_to("/").as_posix())
            info.type, info.mode, info.mtime = kind, mode, now
            info.uid, info.gid, info.uname, info.gname = uid, gid, user, user
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if content else None)
    try:
        container.client.api.put_archive(container.id, "/", buffer.getvalue())
    except APIError as exc:
        raise ProvisionFailed(f"{container.name}: could not install the admin key") from exc


def account(passwd: str, user: str, where: str) -> tuple[int, int, str]:
    """(uid, gid, home) of ``user`` in the text of an ``/etc/passwd``."""
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and fields[0] == user and fields[2].isdigit() and fields[3].isdigit():
            return int(fields[2]), int(fields[3]), fields[5]
    raise ProvisionFailed(f"{where}: the image has no {user} account")


def read_file(container: Container, path: str) -> bytes:
    """One regular file of a container (created or running), read through Docker."""
    try:
        stream, _ = container.client.api.get_archive(container.id, path)
        raw = b"".join(stream)
    except (APIError, NotFound) as exc:
        raise ProvisionFailed(f"{container.name}: cannot read {path}") from exc
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        member = tar.next()
        handle = tar.extractfile(member) if member is not None and member.isfile() else None
        if handle is None:
            raise ProvisionFailed(f"{container.name}: {path} is not a regular file")
        return handle.read()


def sshd_answers(address: str, port: int = SSH_PORT, timeout: float = PROBE_SECONDS) -> bool:
    """True when an SSH server greets on ``address:port`` (its version banner)."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            return sock.recv(64).startswith(BANNER_PREFIX)
    except OSError:
        return False


def wait_for_sshd(
    client: docker.DockerClient, guests: Sequence[GuestEntry], timeout: float
) -> dict[str, str]:
    """Wait until sshd greets on every guest; return address -> host key, read out of band.

    sshd listens only after its start made the host key, so once it greets the key is
    there to read.
    """
    deadline = time.monotonic() + timeout
    pending = list(guests)
    while pending:
        pending = [g for g in pending if not sshd_answers(g.ip)]
        if not pending:
            break
        if time.monotonic() > deadline:
            first = pending[0]
            raise ProvisionFailed(
                f"{first.name}: sshd did not answer on {first.ip}:{SSH_PORT} within "
                f"{timeout:.0f} s; {why_no_sshd(client, first)}"
            )
        time.sleep(POLL_SECONDS)
    keys = {}
    for guest in guests:
        container = client.containers.get(guest.container)
        text = read_file(container, HOST_KEY_PATH).decode(errors="replace")
        keys[guest.ip] = host_key(text, f"{guest.name}:{HOST_KEY_PATH}")
    return keys


def why_no_sshd(client: docker.DockerClient, guest: GuestEntry) -> str:
    """One line from the guest's journal about its ssh service."""
    try:
        container = client.containers.get(guest.container)
        code, output = container.exec_run(
            ["journalctl", "-u", "ssh", "-n", "1", "-o", "cat", "--no-pager"]
        )
    except (APIError, NotFound):
        return "its container is gone"
    text = output.decode(errors="replace").strip() if isinstance(output, bytes) else ""
    if code != 0 or not text:
        return "ssh.service logged nothing"
    return f"ssh.service says: {text.splitlines()[-1][:240]}"


def record_host_keys(client: docker.DockerClient, roster: Roster, timeout: float) -> None:
    """Wait for every guest's sshd and write the lab's ``known_hosts`` from what the
    guests' disks hold (read through Docker, never from the network)."""
    write_known_hosts(lab_ssh_files(roster.lab), wait_for_sshd(client, roster.guests, timeout))
