"""A guest's cgroups: its own subtree, writable for its systemd, and nothing of the host's.

systemd (the guest's PID 1) must create cgroups for its units, so it needs a writable
cgroup hierarchy. Bind-mounting the host's ``/sys/fs/cgroup`` gives it one, but on this
cgroup v1 host such a bind is read-only only at its top: every hierarchy below it stays
the *host's*, writable from the guest — its root could create cgroups anywhere on the
host, freeze or starve other labs' containers. An Azure VM sees only its own cgroups.

So a guest runs in a private cgroup namespace, where Docker mounts each hierarchy rooted
at the container's own cgroup — but read-only, which systemd refuses. The guest's
entrypoint (:data:`ENTRYPOINT`) therefore waits, before it starts systemd, until the host
has *opened* its cgroups (:func:`open_cgroups`, run by the host in the guest's mount
namespace with ``nsenter``; the guest itself cannot do it): each of the container's own
hierarchies remounted writable, and first the files that hold the VM's size (CPU quota,
memory limit, cpuset, pids limit) bound read-only over themselves, so root in the guest
cannot grow its VM either; and, where the host has one, a cgroup2 "unified" hierarchy
mounted from inside the guest's cgroup namespace (so rooted at its own cgroup), which
systemd's hybrid mode uses to learn that a unit's processes are gone (without it, every
unit stop waits for its timeout). The guest's root has no ``CAP_SYS_ADMIN``: it can neither
remount nor unmount any of this. (Docker's privileged ``exec`` would be simpler, but it
asks for every capability, and a host whose bounding set lacks one refuses it.)

Every start of a guest container needs it (``up``, a power start or restart, a reset):
the callers that start one call :func:`open_cgroups` right after. The ARM twin's
container does too, so it shares the host's PID namespace and holds ``CAP_SYS_ADMIN``
and ``CAP_SYS_PTRACE`` (it already holds the Docker socket, which is more). Stdlib only:
the twin runs it with Debian's python3-docker (low-level API calls only).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

Run = Callable[..., "subprocess.CompletedProcess[str]"]

# How long a booting guest waits for the host before it gives up (exit code below).
WAIT_SECONDS = 120
NOT_OPENED_EXIT_CODE = 75
_MARK = "/sys/fs/cgroup/systemd"

ENTRYPOINT = [
    "/bin/sh",
    "-c",
    f"i=0; until [ -w {_MARK} ]; do i=$((i + 1)); "
    f"if [ $i -gt {WAIT_SECONDS * 10} ]; then "
    'echo "snaplab: the host did not open this guest\'s cgroups" >&2; '
    f"exit {NOT_OPENED_EXIT_CODE}; fi; sleep 0.1; done; "
    'exec "$@"',
    "snaplab-boot",
]
COMMAND = ["/sbin/init"]

# The files that make a VM's size; none is written by the guest's systemd.
SIZE_FILES = (
    "memory.limit_in_bytes",
    "memory.memsw.limit_in_bytes",
    "memory.soft_limit_in_bytes",
    "memory.kmem.limit_in_bytes",
    "memory.kmem.tcp.limit_in_bytes",
    "cpu.cfs_quota_us",
    "cpu.cfs_period_us",
    "cpu.shares",
    "cpu.rt_runtime_us",
    "cpuset.cpus",
    "cpuset.mems",
    "pids.max",
    "memory.max",
    "memory.high",
    "memory.swap.max",
    "cpu.max",
    "cpu.weight",
    "io.max",
)

OPEN_SCRIPT = f"""
set -e
[ -w {_MARK} ] && exit 0
mounts=""
while read -r _ dir type _; do
  case "$type" in cgroup|cgroup2) mounts="$mounts $dir" ;; esac
done < /proc/1/mounts
for dir in $mounts; do
  for name in {" ".join(SIZE_FILES)}; do
    file="$dir/$name"
    [ -f "$file" ] || continue
    mount --bind "$file" "$file"
    mount -o remount,bind,ro,nosuid,nodev,noexec "$file"
  done
done
# systemd's unified hierarchy (hybrid mode), as the host has it: mounted from inside the
# guest's cgroup namespace, so it is rooted at the container's own cgroup; before the
# hierarchies turn writable, which is what lets the guest's systemd start.
if grep -qw cgroup2 /proc/filesystems; then
  mkdir -p /sys/fs/cgroup/unified
  mountpoint -q /sys/fs/cgroup/unified ||
    mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup/unified
fi
for dir in $mounts; do
  mount -o remount,bind,rw,nosuid,nodev,noexec "$dir"
done
[ -w {_MARK} ]
"""


class CgroupError(RuntimeError):
    """The host could not open a guest's cgroups (the guest will not boot)."""


def open_cgroups(api: Any, container: str, run: Run = subprocess.run) -> None:
    """Open ``container``'s own cgroups to its systemd (idempotent).

    ``api`` is docker-py's low-level ``APIClient`` (``client.api``); the caller must be
    root in the host's PID namespace (the host, or the ARM twin's container).
    """
    pid = int((api.inspect_container(container).get("State") or {}).get("Pid") or 0)
    if pid <= 0:
        raise CgroupError(f"{container} is not running: its cgroups cannot be opened")
    done = run(
        ["nsenter", "-t", str(pid), "-m", "-C", "--", "/bin/sh", "-c", OPEN_SCRIPT],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        text = (done.stderr or done.stdout or "").strip()
        raise CgroupError(f"could not open {container}'s cgroups (exit {done.returncode}): {text}")
