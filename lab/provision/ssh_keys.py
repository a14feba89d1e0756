"""A lab's SSH files on the host: its admin key pair and the guests' host keys.

On Azure an engineer reaches a Linux VM with the key pair the VM was deployed with
(``ssh azureuser@VM``). Each lab gets its own ed25519 pair, made at ``up`` in the lab's
state folder and removed with it by ``down``; only its public half goes into the guests.

The guests' host keys are recorded here too (``known_hosts``), read out of band when the
lab starts, so the client runs with ``StrictHostKeyChecking=yes`` and never trusts a key
it is first shown on the network.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from lab.errors import ProvisionFailed
from lab.provision.state_dir import lab_dir

SSH_FOLDER = "ssh"
PRIVATE_KEY_FILE = "id_ed25519"
PUBLIC_KEY_FILE = "id_ed25519.pub"
KNOWN_HOSTS_FILE = "known_hosts"
HOST_KEY_TYPE = "ssh-ed25519"


@dataclass(frozen=True)
class LabSshFiles:
    """Where a lab's SSH files live (they need not exist yet)."""

    folder: Path

    @property
    def private_key(self) -> Path:
        return self.folder / PRIVATE_KEY_FILE

    @property
    def public_key(self) -> Path:
        return self.folder / PUBLIC_KEY_FILE

    @property
    def known_hosts(self) -> Path:
        return self.folder / KNOWN_HOSTS_FILE


def lab_ssh_files(lab: str) -> LabSshFiles:
    return LabSshFiles(lab_dir(lab) / SSH_FOLDER)


def create_key_pair(files: LabSshFiles, comment: str) -> str:
    """Make a new ed25519 pair (the private key mode 0600); return the public key line."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    line = f"{public.decode()} {comment}"
    files.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(files.folder, 0o700)
    _write(files.private_key, private, 0o600)
    _write(files.public_key, f"{line}\n".encode(), 0o644)
    return line


def host_key(text: str, where: str) -> str:
    """``ssh-ed25519 <base64>`` from the text of a ``.pub`` host key file.

    The comment is dropped and the key is checked to be an ed25519 key blob, so what goes
    into ``known_hosts`` is exactly a key and nothing the file might smuggle in.
    """
    words = text.strip().split()
    if len(words) < 2 or words[0] != HOST_KEY_TYPE:
        raise ProvisionFailed(f"{where}: not an {HOST_KEY_TYPE} public key")
    try:
        blob = base64.b64decode(words[1], validate=True)
        serialization.load_ssh_public_key(f"{HOST_KEY_TYPE} {words[1]}".encode())
    except (binascii.Error, ValueError) as exc:
        raise ProvisionFailed(f"{where}: the {HOST_KEY_TYPE} key does not decode") from exc
    return f"{HOST_KEY_TYPE} {base64.b64encode(blob).decode()}"


def write_known_hosts(files: LabSshFiles, keys: dict[str, str]) -> None:
    """One line per guest address: ``<address> ssh-ed25519 <base64>``."""
    lines = "".join(f"{address} {key}\n" for address, key in sorted(keys.items()))
    files.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write(files.known_hosts, lines.encode(), 0o644)


def read_known_hosts(files: LabSshFiles) -> dict[str, str]:
    """Address -> key, as :func:`write_known_hosts` wrote them ({} when none)."""
    try:
        text = files.known_hosts.read_text()
    except FileNotFoundError:
        return {}
    found = {}
    for line in text.splitlines():
        address, _, key = line.partition(" ")
        if key:
            found[address] = key
    return found


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` so it is never readable with looser permissions than ``mode``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(fd, mode)  # O_CREAT's mode does not apply to a file that already exists
        handle.write(data)
