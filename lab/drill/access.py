"""A trainee's way into their lab, like a customer's into an Azure VM: SSH and scoped creds.

For each trainee, in their folder of the drill (``trainees/<id>/``, mode 0700):

* ``id_ed25519`` / ``.pub``: the trainee's own key pair, its public half added to the
  guest's ``~azureuser/.ssh/authorized_keys`` (beside the lab's key, which the trainer's
  tools keep using); no other trainee's guest has it.
* ``known_hosts``: the guest's host key, read through Docker (never trusted on first
  sight), under a host key alias, so the same line holds whatever address the trainee
  uses for the trainer's machine.
* a host port relayed to the guest's sshd (:mod:`lab.drill.forwarder`).
* ``banner.txt``, also the guest's ``/etc/motd``: the symptom as the customer reports it
  (the failed job's error code and message), never the cause.
* ``env``: the lab's ``snaplab env`` exports for the Azure SDK, and only those a customer
  has (their subscription's Resource Manager, a managed identity, what to trust, the VM's
  name); nothing of the fabric, whose control API is the trainer's. Its token is the
  lab's own ARM twin token, so it does not work on another trainee's lab.
* the guest's shell audit (:mod:`lab.drill.history`).

Nothing written into the guest names the scenario: the banner holds the job's own code
and message, the audit script is generic.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.models.containers import Container

from lab.drill import forwarder, history
from lab.drill.guest_check import COMMAND_PATH
from lab.drill.state import Access, Symptom
from lab.errors import ProvisionFailed, UnknownVm
from lab.platform.arm.managed_identity import PATH as IDENTITY_PATH
from lab.platform.roster import Roster
from lab.provision import lab as labs
from lab.provision.containers import put_file
from lab.provision.labels import LAB_LABEL, ROLE_LABEL
from lab.provision.ssh_guest import ADMIN_USER, HOST_KEY_PATH, install_admin_key, read_file
from lab.provision.ssh_keys import LabSshFiles, create_key_pair, host_key
from lab.provision.trust import ca_bundle

MOTD_PATH = Path("/etc/motd")
ENV_FILE = "env"
BANNER_FILE = "banner.txt"
CA_FILE = "ca-bundle.pem"
KNOWN_HOSTS_FILE = "known_hosts"
DEFAULT_BIND = "0.0.0.0"
DEFAULT_HOST = "127.0.0.1"
FIRST_PORT = 2200
CHECK_COMMAND = COMMAND_PATH.name  # the drill's "Check My Solution" in the guest
# What a trainee's env file carries, by `snaplab env`'s names (lab.runner.drivers.
# env_exports; a unit test holds them to it): Azure's names a customer's own shell has.
# The `SNAPLAB_*` aliases, the lab's az profile and anything of the fabric stay out.
TRAINEE_EXPORTS = (
    "ARM_ENDPOINT",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_RESOURCE_GROUP",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SNAPLAB_VM",
)


@dataclass(frozen=True)
class TraineeFiles:
    """Where one trainee's access files live (they need not exist yet)."""

    folder: Path

    @property
    def ssh(self) -> LabSshFiles:
        return LabSshFiles(self.folder)

    @property
    def private_key(self) -> Path:
        return self.ssh.private_key

    @property
    def known_hosts(self) -> Path:
        return self.folder / KNOWN_HOSTS_FILE

    @property
    def env_file(self) -> Path:
        return self.folder / ENV_FILE

    @property
    def banner(self) -> Path:
        return self.folder / BANNER_FILE

    @property
    def ca_bundle(self) -> Path:
        return self.folder / CA_FILE


def trainee_files(drill_dir: Path, trainee_id: str) -> TraineeFiles:
    return TraineeFiles(drill_dir / "trainees" / trainee_id)


def banner_text(vm: str, symptom: Symptom) -> str:
    """The login banner: what the customer's ticket says, in Azure's words."""
    return (
        f"Support request: Azure Backup of this virtual machine ({vm}) fails.\n"
        "The customer's last backup job ended with:\n"
        f"  Error code: {symptom.error_code}\n"
        f"  Message:    {symptom.message}\n"
        "Find out why, fix it, and make sure a new backup completes.\n"
        f"When you think it is fixed, run `{CHECK_COMMAND}` (it runs a backup and checks).\n"
    )


def ssh_command(files: TraineeFiles, alias: str, port: int, host: str = DEFAULT_HOST) -> str:
    """The one line a trainee types (OpenSSH, no config file, their key and host key)."""
    argv = [
        "ssh",
        "-F",
        "none",
        "-i",
        str(files.private_key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={files.known_hosts}",
        "-o",
        f"HostKeyAlias={alias}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-p",
        str(port),
        f"{ADMIN_USER}@{host}",
    ]
    return shlex.join(argv)


def trainee_exports(arm: labs.ArmEndpoint, bundle: Path, vm: str) -> dict[str, str]:
    """The trainee's part of ``snaplab env``: the same values, under the same names,
    with the CA bundle's copy in their own folder."""
    exports = {
        "ARM_ENDPOINT": arm.url,
        "IDENTITY_ENDPOINT": f"{arm.url}{IDENTITY_PATH}",
        "IDENTITY_HEADER": arm.token,
        "AZURE_SUBSCRIPTION_ID": arm.subscription_id,
        "AZURE_RESOURCE_GROUP": arm.resource_group,
        "REQUESTS_CA_BUNDLE": str(bundle),
        "SSL_CERT_FILE": str(bundle),
        "SNAPLAB_VM": vm,
    }
    assert tuple(exports) == TRAINEE_EXPORTS
    return exports


def env_file_text(exports: dict[str, str]) -> str:
    """``export NAME=value`` lines for the trainee's shell (``. ./env``)."""
    lines = ["# Your subscription's Azure endpoints and identity: `. ./env`, then the Azure SDK."]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in exports.items()]
    return "\n".join(lines) + "\n"


def preferred_port(trainee_id: str) -> int | None:
    """t01 -> 2201: a port a trainer can read off the id, when it is free."""
    digits = re.findall(r"\d+", trainee_id)
    if not digits or int(digits[-1]) > 799:
        return None
    return FIRST_PORT + int(digits[-1])


def grant_access(
    client: docker.DockerClient,
    drill_dir: Path,
    trainee_id: str,
    roster: Roster,
    symptom: Symptom,
    *,
    vm: str | None = None,
    bind: str = DEFAULT_BIND,
    host: str = DEFAULT_HOST,
) -> Access:
    """Give one trainee their key, banner, shell audit, SSH port and env file.

    Call it once the lab is up and broken (the symptom is the failed job's); calling it
    again (``drill reset`` brings a fresh lab) replaces everything.
    """
    guest = roster.guest_by_name(vm) if vm else (roster.guests[0] if roster.guests else None)
    if guest is None:
        raise UnknownVm(f"lab {roster.lab!r} has no VM named {vm!r}")
    files = trainee_files(drill_dir, trainee_id)
    _fresh_folder(files.folder)
    container = client.containers.get(guest.container)
    public = create_key_pair(files.ssh, f"{trainee_id}@{roster.lab}")
    _authorize(container, public)
    banner = banner_text(guest.name, symptom)
    put_file(container, MOTD_PATH, banner.encode(), 0o644)
    _write(files.banner, banner, 0o644)
    history.install(container)
    key = host_key(read_file(container, HOST_KEY_PATH).decode(errors="replace"), guest.name)
    _write(files.known_hosts, f"{roster.lab} {key}\n", 0o644)
    arm = labs.arm_endpoint(client, roster.lab)
    shutil.copyfile(ca_bundle(roster.lab, Path(arm.ca_file)), files.ca_bundle)
    exports = trainee_exports(arm, files.ca_bundle, guest.name)
    _write(files.env_file, env_file_text(exports), 0o600)
    # The preferred port, else any; once more should another process take it meanwhile.
    for preferred in (preferred_port(trainee_id), None):
        port = forwarder.free_port(bind, preferred)
        try:
            forwarder.start_forwarder(
                client,
                lab=roster.lab,
                trainee_id=trainee_id,
                image=_host_image(client, roster.lab),
                target=guest.ip,
                bind=bind,
                port=port,
            )
            break
        except ProvisionFailed:
            if preferred is None:
                raise
    return Access.model_validate(
        {
            "ssh": ssh_command(files, roster.lab, port, host),
            "env_file": str(files.env_file),
            "port": port,
            "key": str(files.private_key),
            "known_hosts": str(files.known_hosts),
            "banner": str(files.banner),
        }
    )


def revoke_access(client: docker.DockerClient, lab: str, trainee_id: str | None = None) -> int:
    """Close the trainee's (every trainee's of the lab) SSH port; ``down`` does it too."""
    return forwarder.remove_forwarders(client, lab, trainee_id)


def _fresh_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    os.chmod(folder, 0o700)


def _authorize(container: Container, public_key: str) -> None:
    """Add the trainee's key to the admin's ``authorized_keys`` (the lab's stays)."""
    try:
        current = read_file(container, f"/home/{ADMIN_USER}/.ssh/authorized_keys").decode()
    except ProvisionFailed:
        current = ""
    keys = [line for line in current.splitlines() if line.strip()]
    install_admin_key(container, "\n".join([*keys, public_key.strip()]))


def _host_image(client: docker.DockerClient, lab: str) -> str:
    """The lab's own platform image (it has Python), as its ARM twin runs it."""
    arm = client.containers.list(
        all=True, filters={"label": [f"{LAB_LABEL}={lab}", f"{ROLE_LABEL}=arm"]}
    )
    if not arm:
        raise ProvisionFailed(f"lab {lab} has no ARM twin container")
    return str(arm[0].image.id)


def _write(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(fd, mode)
        handle.write(text)
