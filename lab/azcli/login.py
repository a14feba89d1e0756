"""Each lab's Azure CLI profile, logged in like Cloud Shell, and the exports that use it.

When the CLI is installed (:mod:`lab.azcli.install`), a lab gets its own
``AZURE_CONFIG_DIR`` in its state folder (removed by ``down``) in which, with the
unmodified ``az``:

1. ``az cloud register -n snaplab-<lab> --endpoint-resource-manager <twin>/`` (az reads
   the rest from the twin's ``/metadata/endpoints``) and ``az cloud set``;
2. ``az login --identity``: the lab's managed identity (``IDENTITY_ENDPOINT`` /
   ``IDENTITY_HEADER``) gives a token, az lists the subscriptions it sees and makes the
   lab's the default.

It is done once per lab, on the first ``snaplab env`` (or runbook) that needs it, not at
``up``: about a second of ``az`` start-ups, which a lab nobody types ``az`` in never pays,
and a lab started before the CLI was installed gets it too. A stamp holding the twin's
URL marks a finished login; a file lock keeps two callers from doing it at once. The
managed identity is asked for a fresh token by every ``az`` command, so nothing here
expires.

The exports: ``AZURE_CONFIG_DIR``, ``AZURE_CORE_INSTANCE_DISCOVERY=false`` (MSAL would
otherwise ask a Microsoft host to vouch for the lab's authority),
``AZURE_CORE_COLLECT_TELEMETRY=false``, and ``PATH`` with the folder holding ``az``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lab.azcli.install import AzInstall, installed
from lab.azcli.locking import locked
from lab.errors import AzCliError
from lab.provision.state_dir import az_config_dir

STAMP = ".snaplab-login"
AZ_TIMEOUT_SECONDS = 120
# What every az command against a lab needs in its environment (the login included).
SETTINGS = {
    "AZURE_CORE_INSTANCE_DISCOVERY": "false",
    "AZURE_CORE_COLLECT_TELEMETRY": "false",
}


@dataclass(frozen=True)
class LabAccess:
    """What the CLI needs to reach one lab: its twin, its identity and what to trust."""

    lab: str
    arm_url: str
    identity_endpoint: str
    identity_header: str
    ca_bundle: Path

    @property
    def cloud(self) -> str:
        return f"snaplab-{self.lab}"


def exports(
    access: LabAccess, path: str | None = None, az: AzInstall | None = None
) -> dict[str, str]:
    """The variables ``snaplab env`` adds for ``az`` (none when the CLI is not installed),
    logging the lab in first if needed.

    ``path`` is the caller's ``PATH`` (default: this process's); the folder holding
    ``az`` goes in front, once."""
    az = az or installed()
    if az is None:
        return {}
    if path is None:
        path = os.environ.get("PATH", "")
    config = ensure_logged_in(az, access)
    folder = str(az.path_folder)
    parts = [p for p in path.split(os.pathsep) if p and p != folder]
    return {
        "AZURE_CONFIG_DIR": str(config),
        **SETTINGS,
        "PATH": os.pathsep.join([folder, *parts]),
    }


def ensure_logged_in(az: AzInstall, access: LabAccess) -> Path:
    """The lab's config dir, with its cloud active and ``az login --identity`` done."""
    config = az_config_dir(access.lab)
    if _stamped(config, access):
        return config
    config.parent.mkdir(parents=True, exist_ok=True)
    with locked(config.parent / "az.lock"):
        if _stamped(config, access):
            return config
        shutil.rmtree(config, ignore_errors=True)  # a half-done login is redone whole
        config.mkdir(mode=0o700)
        env = command_env(access, config)
        register = ("--endpoint-resource-manager", f"{access.arm_url}/")
        _az(az, access, env, "cloud", "register", "-n", access.cloud, *register)
        _az(az, access, env, "cloud", "set", "-n", access.cloud)
        _az(az, access, env, "login", "--identity", "--output", "none")
        (config / STAMP).write_text(access.arm_url + "\n")
    return config


def command_env(
    access: LabAccess, config: Path, base: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The environment of an ``az`` command against the lab (what the exports set)."""
    return {
        **base,
        **SETTINGS,
        "AZURE_CONFIG_DIR": str(config),
        "REQUESTS_CA_BUNDLE": str(access.ca_bundle),
        "IDENTITY_ENDPOINT": access.identity_endpoint,
        "IDENTITY_HEADER": access.identity_header,
    }


def _stamped(config: Path, access: LabAccess) -> bool:
    try:
        return (config / STAMP).read_text().strip() == access.arm_url
    except OSError:
        return False


def _az(az: AzInstall, access: LabAccess, env: Mapping[str, str], *args: str) -> None:
    command = f"az {' '.join(args[:2])}"
    try:
        done = subprocess.run(
            [str(az.az), *args],
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=AZ_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AzCliError(f"{command} for lab {access.lab!r} failed: {exc}") from exc
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        detail = next((line for line in lines if line.startswith("ERROR")), None)
        raise AzCliError(
            f"{command} for lab {access.lab!r} exited {done.returncode}: "
            f"{detail or (lines[-1] if lines else 'no output')}"
        )
