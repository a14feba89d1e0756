"""Install the unmodified Azure CLI from PyPI into its own venv, pinned, once.

``azure-cli`` pins its own versions of the Azure SDKs (older than snaplab's), so it gets
a venv of its own, ``.venv-az`` beside the checkout's ``.venv`` (``SNAPLAB_AZ_VENV``
moves it). The version is the one whose requests the lab was checked against
(``PINNED_VERSION``); a stamp file says the install finished, so a second call costs a
stat and an interrupted one is redone. ``snaplab`` puts on ``PATH`` a folder holding only
``az`` (a link to the venv's script), so the venv's ``python`` and ``pip`` never shadow
the caller's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import lab
from lab.azcli.locking import locked
from lab.errors import AzCliError
from lab.runbook import Step

PACKAGE = "azure-cli"
PINNED_VERSION = "2.91.0"
VENV_ENV = "SNAPLAB_AZ_VENV"
VENV_NAME = ".venv-az"
STAMP = ".snaplab-azure-cli"
PATH_FOLDER = "snaplab-bin"  # holds only the `az` link: what goes on PATH
PIP_TIMEOUT_SECONDS = 1800

Report = Callable[[str], None]
# `az` as a command word of a shell line: at its start or after a separator.
_AZ_COMMAND = re.compile(r"(?:^|[\s;&|(`])az\s", re.MULTILINE)


@dataclass(frozen=True)
class AzInstall:
    """A finished install: the venv and the ``az`` a caller runs."""

    venv: Path

    @property
    def az(self) -> Path:
        return self.venv / "bin" / "az"

    @property
    def path_folder(self) -> Path:
        """The folder to put on ``PATH``: only ``az`` is in it."""
        return self.venv / PATH_FOLDER


def venv_dir(env: dict[str, str] | None = None) -> Path:
    """Where the CLI's venv lives: ``SNAPLAB_AZ_VENV``, else ``.venv-az`` in the checkout
    that holds the lab package (beside ``.venv``), else beside the running venv."""
    chosen = (os.environ if env is None else env).get(VENV_ENV, "").strip()
    if chosen:
        return Path(chosen)
    checkout = Path(lab.__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout / VENV_NAME
    return Path(sys.prefix).parent / VENV_NAME


def installed(venv: Path | None = None) -> AzInstall | None:
    """The pinned CLI if its install finished here, else None."""
    found = AzInstall(venv or venv_dir())
    try:
        stamp = (found.venv / STAMP).read_text().strip()
    except OSError:
        return None
    if stamp != PINNED_VERSION or not found.az.is_file():
        return None
    return found


def ensure_installed(report: Report = lambda _: None, venv: Path | None = None) -> AzInstall:
    """The pinned CLI, installed first if needed (about 90 s and 730 MB)."""
    target = venv or venv_dir()
    done = installed(target)
    if done is not None:
        report(f"{PACKAGE} {PINNED_VERSION}: already installed in {target}")
        return done
    target.mkdir(parents=True, exist_ok=True)
    with locked(target / ".snaplab-install.lock"):
        done = installed(target)  # another process may have finished it meanwhile
        if done is not None:
            return done
        started = time.monotonic()
        if not (target / "bin" / "python").exists():
            report(f"{PACKAGE}: making its venv {target}")
            _run([_base_python(), "-m", "venv", str(target)], "make the venv")
        report(f"{PACKAGE} {PINNED_VERSION}: installing from PyPI (about 130 packages)")
        _pip_install(target, report)
        found = AzInstall(target)
        _link_az(found)
        (target / STAMP).write_text(PINNED_VERSION + "\n")
        report(
            f"{PACKAGE} {PINNED_VERSION}: installed in {target} "
            f"({time.monotonic() - started:.0f} s)"
        )
        return found


def needed_by(steps: Iterable[Step]) -> bool:
    """Whether a runbook's platform steps call ``az``: then a run installs the CLI before
    its labs start, as it makes sure of the SSH client for guest steps."""
    return any(
        step.kind == "platform" and step.language == "bash" and _AZ_COMMAND.search(step.code)
        for step in steps
    )


def _pip_install(venv: Path, report: Report) -> None:
    """``pip install azure-cli==PINNED``, reporting every 25th package it collects."""
    argv = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        f"{PACKAGE}=={PINNED_VERSION}",
    ]
    tail: list[str] = []
    collected = 0
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as pip:
        assert pip.stdout is not None
        for line in pip.stdout:
            tail = [*tail[-9:], line.rstrip()]
            if line.startswith("Collecting "):
                collected += 1
                if collected % 25 == 0:
                    report(f"{PACKAGE}: {collected} packages collected")
            elif line.startswith("Installing collected packages"):
                report(f"{PACKAGE}: installing {collected} packages")
        code = pip.wait(timeout=PIP_TIMEOUT_SECONDS)
    if code != 0:
        last = next((t for t in reversed(tail) if t.strip()), "no output")
        raise AzCliError(f"pip could not install {PACKAGE}=={PINNED_VERSION} in {venv}: {last}")


def _link_az(found: AzInstall) -> None:
    """``snaplab-bin/az`` → ``../bin/az`` (the script resolves its own real path)."""
    found.path_folder.mkdir(exist_ok=True)
    link = found.path_folder / "az"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path("..") / "bin" / "az")


def _base_python() -> str:
    """The interpreter under the running venv: a venv made from a venv's python works,
    but its base is the one to name."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise AzCliError(f"could not {what} for {PACKAGE}: {tail[0]}")
