"""The ``waagent.conf`` each agent version ships, as data, and the lab image's changes to it.

A case file records only the settings a customer changed, so an import compares the
bundle's ``etc/waagent.conf`` with the file the agent's package installs. Those files are
kept as data (``lab/bundle/defaults/waagent-<version>.json``: ``shipped`` key/value pairs
of Debian's package, ``lab`` the pairs the lab's guest image sets on top), generated from
the lab's own images by ``python -m lab.bundle.conf_defaults`` and checked against them by
``tests/integration/test_collect_logs.py`` — never typed from memory.

A bundle from another agent version is compared with the nearest version at or below it
(the import says which).
"""

from __future__ import annotations

import io
import json
import re
import sys
import tarfile
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from lab.provision.images import AGENT_FLAVORS

_KEY = re.compile(r"^\s*([A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z0-9]+)+)\s*=\s*(.*?)\s*$")
CONF_PATH = "/etc/waagent.conf"


@dataclass(frozen=True)
class ConfLine:
    line: int
    key: str
    value: str


def parse_conf(text: str) -> list[ConfLine]:
    """The ``Key=value`` settings of a waagent.conf (comments and junk skipped)."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("#"):
            continue
        match = _KEY.match(line)
        if match:
            out.append(ConfLine(number, match.group(1), match.group(2)))
    return out


def conf_dict(text: str) -> dict[str, str]:
    """Settings as the agent reads them: the last line of a key wins."""
    return {item.key: item.value for item in parse_conf(text)}


@dataclass(frozen=True)
class Defaults:
    version: str  # the agent version whose shipped file this is
    shipped: dict[str, str]
    lab: dict[str, str]  # what the lab's guest image sets on top of ``shipped``


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def known_versions() -> tuple[str, ...]:
    return tuple(sorted(AGENT_FLAVORS, key=_version_key))


def nearest_version(version: str | None) -> str:
    """The known version at or below ``version`` (the oldest one below all of them)."""
    known = known_versions()
    if version is None or not re.fullmatch(r"\d+(\.\d+)*", version):
        return known[-1]
    below = [v for v in known if _version_key(v) <= _version_key(version)]
    return below[-1] if below else known[0]


@cache
def defaults_for(version: str) -> Defaults:
    """The data file of ``version`` (a known version; see :func:`nearest_version`)."""
    name = f"waagent-{version}.json"
    text = resources.files("lab.bundle").joinpath("defaults", name).read_text(encoding="utf-8")
    data = json.loads(text)
    return Defaults(version, dict(data["shipped"]), dict(data["lab"]))


def _image_file(client: Any, image: str, path: str) -> str:
    container = client.containers.create(image, command=["true"], entrypoint=[])
    try:
        stream, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            handle = tar.extractfile(member) if member is not None else None
            if handle is None:
                raise RuntimeError(f"{image}: {path} is not a file")
            return handle.read().decode("utf-8")
    finally:
        container.remove(force=True)


def image_defaults(client: Any, version: str) -> dict[str, Any]:
    """The data of ``version`` read from the lab's images: the package's file in the
    guest's root filesystem image (before the lab's recipe), and the guest image's."""
    rootfs = sorted(client.images.list(name=f"snaplab/rootfs-guest-{version}"), key=_created)
    if not rootfs:
        raise RuntimeError(f"no snaplab/rootfs-guest-{version} image (run snaplab setup)")
    shipped = conf_dict(_image_file(client, rootfs[-1].id, CONF_PATH))
    guest = conf_dict(_image_file(client, f"snaplab/guest-{version}:latest", CONF_PATH))
    lab = {key: value for key, value in guest.items() if shipped.get(key) != value}
    return {"version": version, "shipped": shipped, "lab": lab}


def _created(image: Any) -> str:
    return str(image.attrs.get("Created", ""))


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def main() -> None:  # pragma: no cover - run by hand after an image change
    import docker

    from lab.provision.engine import connect

    client: docker.DockerClient = connect()
    folder = resources.files("lab.bundle").joinpath("defaults")
    for version in known_versions():
        text = render(image_defaults(client, version))
        target = folder.joinpath(f"waagent-{version}.json")
        with resources.as_file(target) as path:
            path.write_text(text, encoding="utf-8")
        sys.stdout.write(f"wrote {target}\n")


if __name__ == "__main__":
    main()
