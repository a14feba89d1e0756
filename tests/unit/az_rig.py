"""The real, pinned ``az`` against a twin served in-process: as a platform step runs it,
with what ``snaplab env`` exports (the lab logged in, ``az`` on PATH). Tests using it are
skipped, saying why, when ``snaplab setup --az`` has not installed the CLI."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from lab.azcli import install, login
from lab.azcli.login import LabAccess
from lab.platform.arm.managed_identity import PATH as IDENTITY_PATH
from lab.provision.state_dir import lab_dir
from lab.provision.trust import ca_bundle

AZ = install.installed()
needs_az = pytest.mark.skipif(
    AZ is None,
    reason=f"{install.PACKAGE} {install.PINNED_VERSION} is not installed "
    f"(`snaplab setup --az` puts it in {install.venv_dir()})",
)

Az = Callable[..., subprocess.CompletedProcess[str]]


def az_for(lab: str, url: str, ca: Path, token: str) -> Az:
    """``az`` logged in to the twin at ``url`` (the caller sets ``SNAPLAB_STATE_DIR``)."""
    assert AZ is not None
    lab_dir(lab).mkdir(parents=True, exist_ok=True)
    bundle = ca_bundle(lab, ca)
    access = LabAccess(lab, url, f"{url}{IDENTITY_PATH}", token, bundle)
    env = {
        **os.environ,
        **login.exports(access, az=AZ),
        "IDENTITY_ENDPOINT": access.identity_endpoint,
        "IDENTITY_HEADER": token,
        "REQUESTS_CA_BUNDLE": str(bundle),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["az", *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )

    return run
