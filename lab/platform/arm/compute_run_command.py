"""Run Command (``POST .../virtualMachines/<vm>/runCommand``) as CRP carries it out.

Azure runs a Linux VM's Run Command through its RunCommandLinux extension: CRP puts the
script in the handler's protected settings with a new sequence number, the VM agent
installs the handler if needed and runs ``enable``, and the handler reports the script's
output in its status ("Enable succeeded: \\n[stdout]\\n...\\n[stderr]\\n..."). So a Run
Command works exactly when the agent and extension processing work: a stopped agent
fails it with ``VMAgentStatusCommunicationError``, disabled extensions with the agent's
own message (:mod:`lab.platform.arm.compute_extension_work`). The lab's handler is its
own (``lab/extension/run_command``), carried out by the real agent.

The result, served at the operation's ``Location`` once it succeeds, is Azure's
``RunCommandResult``: ``{"value": [{code, level, displayStatus, message}]}``. A script
that exits non-zero still succeeds, as on Azure: its failure shows in its output.

``RunShellScript`` runs the script's lines as one shell script; its ``parameters`` are
the script's positional arguments (``$1``, ``$2``..., in order), as ``az vm run-command
invoke --scripts 'echo $1 $2' --parameters hello world`` uses them. ``ifconfig`` runs
``ifconfig``. Other command ids are Windows' or unknown and refused.

Pure apart from the request body: no I/O. Runs in the twin's container (stdlib only).
"""

from __future__ import annotations

import base64
import gzip
import shlex
from dataclasses import dataclass
from typing import ClassVar

from lab.platform.arm.conventions import ArmError, JsonObject
from lab.platform.arm.fabric import ExtensionReport

HANDLER = "Microsoft.CPlat.Core.RunCommandLinux"
EXTENSION_NAME = "RunCommandLinux"
# The minor version CRP asks for; the newest 1.x the platform publishes is installed.
REQUESTED_VERSION = "1.0"
LINUX_COMMANDS = ("RunShellScript", "ifconfig")
MAX_SCRIPT_BYTES = 256 * 1024  # the handler refuses a larger (encoded) script
NOT_RUNNING_MESSAGE = "The operation requires the VM to be running (or set to run)."
IN_PROGRESS_MESSAGE = (
    "Run command extension execution is in progress. Please wait for completion before "
    "invoking a run command."
)


@dataclass(frozen=True)
class RunCommand:
    """One Run Command operation on a VM (the operation's action)."""

    command_id: str
    value: ClassVar[str] = "runCommand"


@dataclass(frozen=True)
class RunCommandInput:
    """A ``RunCommandInput`` body, validated."""

    command_id: str
    script: tuple[str, ...]
    parameters: tuple[str, ...]

    @classmethod
    def from_body(cls, body: JsonObject) -> RunCommandInput:
        command_id = body.get("commandId")
        if not isinstance(command_id, str) or not command_id:
            raise _invalid("Required parameter 'commandId' is missing (null).")
        known = next((c for c in LINUX_COMMANDS if c.lower() == command_id.lower()), None)
        if known is None:
            raise _invalid(
                f"The value '{command_id}' of parameter 'commandId' is not valid for a Linux "
                f"virtual machine. Valid values are: {', '.join(LINUX_COMMANDS)}.",
            )
        script = body.get("script") or []
        if not isinstance(script, list) or not all(isinstance(line, str) for line in script):
            raise _invalid("The value of parameter 'script' must be a list of strings.")
        raw_parameters = body.get("parameters") or []
        if not isinstance(raw_parameters, list):
            raise _invalid("The value of parameter 'parameters' must be a list.")
        parameters = []
        for parameter in raw_parameters:
            value = parameter.get("value") if isinstance(parameter, dict) else None
            if not isinstance(value, str):
                raise _invalid("Each run command parameter needs a 'name' and a 'value'.")
            parameters.append(value)
        return cls(known, tuple(script), tuple(parameters))

    def shell_script(self) -> str:
        """The script the handler runs: the lines, after ``set --`` with the parameters."""
        lines = list(self.script) if self.command_id == "RunShellScript" else ["ifconfig"]
        if self.parameters:
            lines.insert(0, "set -- " + " ".join(shlex.quote(p) for p in self.parameters))
        return "\n".join(lines) + "\n"

    def protected_settings(self) -> dict[str, object]:
        """The handler's protected settings: the script, gzip'ed and base64'd."""
        encoded = base64.b64encode(gzip.compress(self.shell_script().encode(), mtime=0))
        if len(encoded) > MAX_SCRIPT_BYTES:
            raise _invalid(
                f"The script is too long: {len(encoded)} bytes encoded, at most "
                f"{MAX_SCRIPT_BYTES}.",
            )
        return {"script": encoded.decode("ascii")}


def run_command_result(report: ExtensionReport) -> JsonObject:
    """Azure's ``RunCommandResult`` from the handler's final status."""
    level = "Warning" if report.status == "warning" else "Info"
    return {
        "value": [
            {
                "code": "ProvisioningState/succeeded",
                "level": level,
                "displayStatus": "Provisioning succeeded",
                "message": report.message or "",
            }
        ]
    }


def _invalid(message: str) -> ArmError:
    return ArmError(400, "InvalidParameter", message)
