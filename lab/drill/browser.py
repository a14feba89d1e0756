"""A real headless browser for the debrief: Debian's ``chromium``, installed on request.

The debrief is a page people open, so its test looks at it the way they will: Chromium
renders it headless and writes a screenshot. ``snaplab setup --browser`` installs
Debian's ``chromium`` package (about 100 MB with its libraries) with apt, as the SSH client
is installed; nothing else in snaplab needs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from lab.errors import ProvisionFailed

PACKAGE = "chromium"
BINARY = "chromium"
SCREENSHOT_TIMEOUT_SECONDS = 120

Report = Callable[[str], None]


def find() -> Path | None:
    found = shutil.which(BINARY)
    return Path(found) if found else None


def ensure_installed(report: Report = lambda _: None) -> Path:
    """Debian's Chromium, installed with apt when it is missing (needs root)."""
    found = find()
    if found is not None:
        report(f"{PACKAGE}: already installed ({found})")
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise ProvisionFailed(f"{BINARY} is missing (install Debian's {PACKAGE} as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    report(f"{PACKAGE}: installing Debian's package")
    for argv in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", PACKAGE],
    ):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ProvisionFailed(f"could not install {PACKAGE}: {tail[0]}")
    found = find()
    if found is None:
        raise ProvisionFailed(f"{PACKAGE} is installed but {BINARY} is not on PATH")
    return found


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 1600) -> Path:
    """Render ``page`` (a local file) headless and write a PNG of the window to ``out``.

    No network is needed or given: ``--proxy-server`` points at a closed local port, so a
    page that tried to fetch anything would show it broken rather than fetch it.
    """
    chromium = find()
    if chromium is None:
        raise ProvisionFailed(f"{BINARY} is missing (run `snaplab setup --browser`)")
    argv = [
        str(chromium),
        "--headless",
        "--no-sandbox",  # root in a container: Chromium's own sandbox needs user namespaces
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--proxy-server=127.0.0.1:9",
        f"--window-size={width},{height}",
        f"--screenshot={out}",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=SCREENSHOT_TIMEOUT_SECONDS, check=False
    )
    if done.returncode != 0 or not out.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ProvisionFailed(f"{BINARY} could not screenshot {page}: {tail[0]}")
    return out
