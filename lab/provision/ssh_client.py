"""How the host reaches a guest over SSH: the system OpenSSH client's command line.

The client is Debian's ``openssh-client`` (``/usr/bin/ssh``), as an engineer's laptop has,
run with the lab's own key, the lab's ``known_hosts`` and strict host key checking, and no
configuration file (``-F none``), so nothing in the caller's ``~/.ssh/config`` changes what
a runbook step does.

A runbook's guest step runs as after ``sudo -i`` on an Azure VM: the admin logs in,
becomes root in a login shell, and runs the step with ``bash -e``. The step's text goes in
on stdin and is read whole before it runs (``"$(cat)"``), so a command in the step that
reads stdin finds it empty instead of eating the rest of the step.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabNotFound, ProvisionFailed, UnknownVm
from lab.platform.roster import Roster
from lab.provision.ssh_guest import ADMIN_USER
from lab.provision.ssh_keys import LabSshFiles, lab_ssh_files

SSH_BINARY = Path("/usr/bin/ssh")
CLIENT_PACKAGE = "openssh-client"
CONNECT_TIMEOUT_SECONDS = 10
# Root's login shell (sudo -i) reads the whole step from stdin, then runs it with bash -e.
ROOT_STEP = ("sudo", "-n", "-i", "bash", "-c", 'exec bash -e -c "$(cat)" bash')


@dataclass(frozen=True)
class SshTarget:
    """One guest as the admin reaches it: its address and the lab's SSH files."""

    vm: str
    address: str
    files: LabSshFiles
    user: str = ADMIN_USER

    def argv(
        self, remote: Sequence[str] = (), *, batch: bool = False, ssh: Path = SSH_BINARY
    ) -> list[str]:
        """``ssh`` with the lab's key and known hosts; ``remote`` as ssh passes it on
        (its words joined by spaces, for the login shell on the guest to read)."""
        options = {
            "IdentitiesOnly": "yes",
            "IdentityAgent": "none",
            "PreferredAuthentications": "publickey",
            "UserKnownHostsFile": str(self.files.known_hosts),
            "GlobalKnownHostsFile": "/dev/null",
            "StrictHostKeyChecking": "yes",
            "UpdateHostKeys": "no",
            "ConnectTimeout": str(CONNECT_TIMEOUT_SECONDS),
            "BatchMode": "yes" if batch else "no",
        }
        argv = [str(ssh), "-F", "none", "-i", str(self.files.private_key)]
        for key, value in options.items():
            argv += ["-o", f"{key}={value}"]
        return [*argv, f"{self.user}@{self.address}", *remote]

    def step_argv(self, ssh: Path = SSH_BINARY) -> list[str]:
        """A runbook guest step: root's login shell, the step's text on stdin."""
        return self.argv([shlex.join(ROOT_STEP)], batch=True, ssh=ssh)


def lab_targets(roster: Roster) -> dict[str, SshTarget]:
    """Every guest of the lab, by VM name."""
    files = lab_ssh_files(roster.lab)
    return {g.name: SshTarget(g.name, g.ip, files) for g in roster.guests}


def target_for(roster: Roster, vm: str) -> SshTarget:
    """The named VM of the lab, or a one-line error naming what exists."""
    target = lab_targets(roster).get(vm)
    if target is None:
        known = ", ".join(g.name for g in roster.guests)
        raise UnknownVm(f"lab {roster.lab!r} has no VM named {vm!r} (it has: {known})")
    if not target.files.private_key.is_file() or not target.files.known_hosts.is_file():
        raise LabNotFound(
            f"lab {roster.lab!r} has no SSH key in {target.files.folder} "
            "(it was started by an older snaplab: take it down and up again)"
        )
    return target


def ensure_client(ssh: Path = SSH_BINARY) -> Path:
    """The OpenSSH client, installing Debian's ``openssh-client`` when it is missing."""
    if ssh.exists():
        return ssh
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise ProvisionFailed(f"{ssh} is missing (install Debian's {CLIENT_PACKAGE})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", CLIENT_PACKAGE],
    ):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ProvisionFailed(f"could not install {CLIENT_PACKAGE}: {tail[0]}")
    if not ssh.exists():
        raise ProvisionFailed(f"{CLIENT_PACKAGE} is installed but {ssh} is missing")
    return ssh
