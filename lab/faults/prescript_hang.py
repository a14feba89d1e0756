"""prescript-hang: an application-consistency pre-script that never returns.

The Linux counterpart of the 2016 article's SQL Server cause (a VSS full backup holds the
snapshot until the sub-task times out). A customer follows Microsoft's guide for
application-consistent Linux backups: ``/etc/azure/VMSnapshotScriptPluginConfig.json``
(root-owned, mode 600) names a pre-script and a post-script (root-owned, mode 700), and
because "the database can take a while" sets ``timeoutInSeconds`` to an hour. The
VMSnapshot extension runs the pre-script before the snapshot and waits for it up to
``min(timeoutInSeconds, the plugin host's 1800 s)``.

The pre-script asks the application ("appdb") to flush and hold its writes through the
application's control pipe, a FIFO under ``/run/appdb``. Nothing serves that pipe (the
application is wedged), so opening it for writing blocks for ever: a real hang in the
kernel, not a sleep. The extension's status stays "transitioning" while it waits; then
the script times out (308) and ``continueBackupOnFailure`` decides whether the backup goes
on file-system consistent or fails.

Parameters: ``timeout_seconds`` (default 3600), ``app_dir`` (default ``/opt/appdb``),
``continue_on_failure`` (``continueBackupOnFailure``, default true; false is the customer
who wants an application-consistent backup or none).
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from lab.faults import register
from lab.faults.base import FaultError, FaultTarget

PLUGIN_CONFIG = "/etc/azure/VMSnapshotScriptPluginConfig.json"
DEFAULT_TIMEOUT_SECONDS = 3600
DEFAULT_APP_DIR = "/opt/appdb"
CONTROL_PIPE = "/run/appdb/control"

PRE_SCRIPT = f"""#!/bin/sh
# appdb pre-snapshot hook: ask appdb to flush and hold its writes before the VM snapshot.
# appdb reads requests from its control pipe and applies them before it answers.
set -e
echo "appdb pre-snapshot: requesting flush-and-hold"
echo flush-and-hold > {CONTROL_PIPE}
echo "appdb pre-snapshot: writes held"
"""

POST_SCRIPT = """#!/bin/sh
# appdb post-snapshot hook: let appdb resume its writes (a no-op when none are held).
echo "appdb post-snapshot: resuming writes"
"""


def plugin_config(
    app_dir: str, timeout_seconds: int, continue_on_failure: bool = True
) -> dict[str, Any]:
    """The plugin configuration a customer writes from Microsoft's template."""
    return {
        "pluginName": "ScriptRunner",
        "preScriptLocation": f"{app_dir}/pre-snapshot.sh",
        "postScriptLocation": f"{app_dir}/post-snapshot.sh",
        "preScriptParams": [],
        "postScriptParams": [],
        "preScriptNoOfRetries": 0,
        "postScriptNoOfRetries": 0,
        "timeoutInSeconds": timeout_seconds,
        "continueBackupOnFailure": continue_on_failure,
        "fsFreezeEnabled": True,
    }


def install_script(app_dir: str, timeout_seconds: int, continue_on_failure: bool = True) -> str:
    """The shell script (run as root in the guest) that sets up the hanging hook."""
    config = json.dumps(plugin_config(app_dir, timeout_seconds, continue_on_failure), indent=4)
    pre, post = f"{app_dir}/pre-snapshot.sh", f"{app_dir}/post-snapshot.sh"
    return f"""
set -e
mkdir -p {shlex.quote(app_dir)} /etc/azure "$(dirname {CONTROL_PIPE})"
[ -p {CONTROL_PIPE} ] || mkfifo -m 600 {CONTROL_PIPE}
cat > {shlex.quote(pre)} <<'SNAPLAB_PRE'
{PRE_SCRIPT}SNAPLAB_PRE
cat > {shlex.quote(post)} <<'SNAPLAB_POST'
{POST_SCRIPT}SNAPLAB_POST
cat > {PLUGIN_CONFIG} <<'SNAPLAB_CONFIG'
{config}
SNAPLAB_CONFIG
chown root:root {shlex.quote(pre)} {shlex.quote(post)} {PLUGIN_CONFIG}
chmod 700 {shlex.quote(pre)} {shlex.quote(post)}
chmod 600 {PLUGIN_CONFIG}
python3 -c 'import json, sys; json.load(open(sys.argv[1]))' {PLUGIN_CONFIG}
"""


class PrescriptHang:
    id = "prescript-hang"
    summary = (
        "VMSnapshotScriptPluginConfig.json names a pre-script that blocks for ever on its "
        "application's control pipe, with timeoutInSeconds 3600"
    )

    def inject(self, target: FaultTarget) -> None:
        app_dir = str(target.params.get("app_dir", DEFAULT_APP_DIR))
        timeout = target.params.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
        keep_going = target.params.get("continue_on_failure", True)
        valid = isinstance(timeout, int) and not isinstance(timeout, bool) and timeout > 0
        if not app_dir.startswith("/") or not valid or not isinstance(keep_going, bool):
            raise FaultError(
                f"{target.vm}: prescript-hang needs an absolute app_dir, a positive "
                f"integer timeout_seconds and a true/false continue_on_failure (got "
                f"{app_dir!r}, {timeout!r}, {keep_going!r})"
            )
        target.run(install_script(app_dir, timeout, keep_going))


register(PrescriptHang())
