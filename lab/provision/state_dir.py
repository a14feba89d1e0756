"""Files a lab keeps on the Docker host (its CA, SSH keys, the Azure CLI's config), removed
with the lab."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

DEFAULT_STATE_ROOT = Path("/var/lib/snaplab/labs")


def state_root() -> Path:
    return Path(os.environ.get("SNAPLAB_STATE_DIR", str(DEFAULT_STATE_ROOT)))


def lab_dir(lab: str) -> Path:
    return state_root() / lab


def az_config_dir(lab: str) -> Path:
    """The lab's ``AZURE_CONFIG_DIR``: its cloud registered and logged in (:mod:`lab.azcli`)."""
    return lab_dir(lab) / "az"


def ca_bundle_file(lab: str) -> Path:
    """Public roots plus the lab CA: ``REQUESTS_CA_BUNDLE`` for the SDKs and ``az``."""
    return lab_dir(lab) / "ca-bundle.pem"


def remove_lab_dir(lab: str | None) -> None:
    """Remove one lab's folder, or every lab's when ``lab`` is None."""
    target = lab_dir(lab) if lab else state_root()
    shutil.rmtree(target, ignore_errors=True)
