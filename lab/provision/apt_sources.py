"""Find the Debian archive this machine already uses, so image builds use the same one.

No archive host name is written into the project: guest images for other suites
(bullseye, trixie) come from the same archive URI the machine is configured with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab.errors import ImageBuildFailed

SOURCES_LIST = Path("/etc/apt/sources.list")
SOURCES_DIR = Path("/etc/apt/sources.list.d")


@dataclass(frozen=True)
class Archive:
    uri: str

    def line(self, suite: str) -> str:
        """A one-line sources entry for mmdebstrap."""
        return f"deb {self.uri} {suite} main"


def machine_archive(sources_list: Path = SOURCES_LIST, sources_dir: Path = SOURCES_DIR) -> Archive:
    """The first main-archive URI (not the security archive) this machine's apt uses."""
    candidates: list[str] = []
    if sources_dir.is_dir():
        for path in sorted(sources_dir.glob("*.sources")):
            candidates.extend(_deb822_uris(path.read_text()))
    if sources_list.is_file():
        candidates.extend(_one_line_uris(sources_list.read_text()))
    if sources_dir.is_dir():
        for path in sorted(sources_dir.glob("*.list")):
            candidates.extend(_one_line_uris(path.read_text()))
    for uri in candidates:
        if "security" not in uri:
            return Archive(uri.rstrip("/"))
    raise ImageBuildFailed(
        f"no Debian archive found in {sources_list} or {sources_dir}/*.sources "
        "(needed to build the lab images)"
    )


def _deb822_uris(text: str) -> list[str]:
    uris: list[str] = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            uris.extend(fields.get("uris", "").split())
    return uris


def _one_line_uris(text: str) -> list[str]:
    uris: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] != "deb":
            continue
        rest = [p for p in parts[1:] if not p.startswith("[")]
        # options in brackets may span several tokens: drop anything up to ']'
        if "[" in line:
            rest = line.split("]", 1)[1].split()
        if rest:
            uris.append(rest[0])
    return uris
