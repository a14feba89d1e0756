"""Files a lab keeps on the Docker host (its CA bundle), removed with the lab."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

DEFAULT_STATE_ROOT = Path("/var/lib/snaplab/labs")


def state_root() -> Path:
    return Path(os.environ.get("SNAPLAB_STATE_DIR", str(DEFAULT_STATE_ROOT)))


def lab_dir(lab: str) -> Path:
    return state_root() / lab


def remove_lab_dir(lab: str | None) -> None:
    """Remove one lab's folder, or every lab's when ``lab`` is None."""
    target = lab_dir(lab) if lab else state_root()
    shutil.rmtree(target, ignore_errors=True)
