""" "Check My Solution" from inside the VM, without giving the guest a way out.

A trainee types ``check-my-solution`` in their guest. The command only leaves a request
file in the guest and waits for an answer file; the trainer's ``snaplab drill watch``
looks for requests in every guest through ``docker exec`` (the host reaching in, as the
checks do), runs the same check as ``snaplab drill check`` (a real backup and the
diagnosis, recorded as an attempt) and writes its one-line answer back into the guest.

So the guest gains no new network path (no socket, no token, no API to the fabric or the
host): everything crosses through the Docker engine, from the host's side. A root trainee
can write a request file by hand (it only asks for a check, which is recorded) or an
answer file (it fools only themselves: the attempt and its result are recorded on the
host, in ``drill.json``).
"""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import docker
from docker.errors import APIError, NotFound

from lab.errors import ProvisionFailed, SnaplabError
from lab.provision import lab as labs
from lab.provision.containers import put_file

COMMAND_PATH = Path("/usr/local/bin/check-my-solution")
FOLDER = "/var/lib/check-my-solution"
REQUEST = f"{FOLDER}/request"
ANSWER = f"{FOLDER}/answer"
WAIT_SECONDS = 1800  # a scheduled failure is checked on the next scheduled run: minutes

SCRIPT = f"""#!/bin/sh
# Ask for your fix to be checked: an on-demand backup runs, then the checks.
# The answer says "fixed" or "not yet"; every check counts as an attempt.
set -e
mkdir -p {FOLDER}
rm -f {ANSWER}
date -u +%Y-%m-%dT%H:%M:%SZ > {REQUEST}
echo "Check requested: a backup runs and the VM is checked (about a minute)..."
i=0
while [ $i -lt {WAIT_SECONDS} ]; do
    if [ -s {ANSWER} ]; then cat {ANSWER}; exit 0; fi
    sleep 1
    i=$((i + 1))
done
echo "No answer yet: ask your trainer whether the drill's checker is running."
exit 1
"""

# One exec per guest per look: take the request if there is one (and say so).
_TAKE = f"if [ -f {REQUEST} ]; then rm -f {REQUEST}; echo requested; fi"


def install(client: docker.DockerClient, lab: str, vm: str) -> None:
    """Put ``check-my-solution`` in the trainee's guest, runnable without sudo: its
    folder is writable by every user (the trainee logs in as the VM's admin).

    Written as an archive, not with a command in the guest, so it works on a guest that
    is shut down too (guest-shutdown's): the files are there when it starts again.
    """
    container = labs.guest_container(client, lab, vm)
    put_file(container, COMMAND_PATH, SCRIPT.encode(), 0o755)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folder = tarfile.TarInfo(FOLDER.lstrip("/"))
        folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o777, int(time.time())
        tar.addfile(folder)
    try:
        container.client.api.put_archive(container.id, "/", buffer.getvalue())
    except APIError as exc:
        raise ProvisionFailed(f"{container.name}: cannot make {FOLDER}: {exc}") from exc


def take_request(client: docker.DockerClient, lab: str, vm: str) -> bool:
    """True when the trainee asked for a check since the last look (the request is taken)."""
    try:
        container = labs.guest_container(client, lab, vm)
        code, output = container.exec_run(["sh", "-c", _TAKE])
    except (APIError, NotFound, SnaplabError):
        return False  # a lab being reset, a guest shut down: no request to take
    return code == 0 and b"requested" in (output or b"")


def answer(client: docker.DockerClient, lab: str, vm: str, line: str) -> None:
    """Write the check's one-line answer where ``check-my-solution`` waits for it."""
    try:
        container = labs.guest_container(client, lab, vm)
        put_file(container, Path(ANSWER), (line + "\n").encode(), 0o644)
    except (APIError, NotFound, SnaplabError):
        return
