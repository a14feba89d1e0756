"""broken-extension: the installed VMSnapshot handler is corrupt on disk.

FACTS.md §1 cause 3 ("backup extension fails to update or load"). The handler the agent
installed under ``/var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-<v>/``
has its Python package overwritten with zeros, file sizes kept — what a crash leaves when
the files' metadata reached the disk and their data did not. Nothing else changes: the
manifest, the handler state (``Enabled``) and the agent are intact, so the agent keeps
running the handler's commands, and every one of them now dies at import
("source code string cannot contain null bytes", exit 1).

What the real agent (2.7.3.0) then does, as observed: it logs the enable command's
non-zero exit, reports the handler *NotReady* and the extension *transitioning* with its
own message ("no status file was reported by extension"), and never runs enable again
for that goal state; the backup ends in the snapshot sub-task timeout. An uninstall
requested through ARM stops at the handler's failing ``disable`` command and leaves the
directory in place, so ARM's delete times out.

Needs a VM whose handler is installed (``warmup_backup: true``).
"""

from __future__ import annotations

from lab.extension.protocol import HANDLER_NAME
from lab.faults import register
from lab.faults.base import FaultTarget

WAAGENT_LIB = "/var/lib/waagent"


def corrupt_script(lib: str = WAAGENT_LIB) -> str:
    """Zero-fill every module of each installed handler's Python package, sizes kept;
    fails when no handler is installed under ``lib``."""
    return f"""
set -e
shopt -s nullglob
dirs=({lib}/{HANDLER_NAME}-*/)
if [ ${{#dirs[@]}} -eq 0 ]; then
    echo "no {HANDLER_NAME} handler is installed (back the VM up once first)" >&2
    exit 1
fi
for dir in "${{dirs[@]}}"; do
    modules=("$dir"main/vmsnapshot/*.py)
    [ ${{#modules[@]}} -gt 0 ] || {{ echo "$dir has no Python package to corrupt" >&2; exit 1; }}
    for module in "${{modules[@]}}"; do
        size=$(stat -c %s "$module")
        [ "$size" -gt 0 ] || continue
        dd if=/dev/zero of="$module" bs="$size" count=1 conv=notrunc status=none
    done
done
"""


class BrokenExtension:
    id = "broken-extension"
    summary = "the installed VMSnapshotLinux handler's Python package zero-filled on disk"

    def inject(self, target: FaultTarget) -> None:
        target.run(corrupt_script())


register(BrokenExtension())
