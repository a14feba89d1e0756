"""The fabric's artifact store: extension manifests and handler zips under ``/artifacts/``."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from lab.platform import documents


@dataclass(frozen=True)
class Artifact:
    data: bytes
    content_type: str


class ArtifactStore:
    """Files the fabric serves under ``/artifacts/`` (extension manifests and zips).

    Guests download handler packages from here, directly or through the HostGAPlugin
    proxy; nothing is ever fetched from outside the lab. Publishing a package
    regenerates its handler's manifest so every published version is listed.
    """

    PREFIX = "/artifacts/"

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._lock = threading.Lock()
        # Serialises whole publications so a manifest is never overwritten by an older
        # listing when two versions are published at once.
        self._publish_lock = threading.Lock()
        self._files: dict[str, Artifact] = {}
        self._versions: dict[str, dict[str, str]] = {}

    def url_for(self, path: str) -> str:
        return f"{self.base_url}{self.PREFIX}{path.lstrip('/')}"

    def put(self, path: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Store a file at ``/artifacts/<path>``; returns its URL."""
        key = path.lstrip("/")
        if not key or ".." in key.split("/"):
            raise ValueError(f"bad artifact path {path!r}")
        with self._lock:
            self._files[key] = Artifact(bytes(data), content_type)
        return self.url_for(key)

    def get(self, path: str) -> Artifact | None:
        """Look up by path below ``/artifacts/`` (with or without the prefix)."""
        key = path[len(self.PREFIX) :] if path.startswith(self.PREFIX) else path.lstrip("/")
        with self._lock:
            return self._files.get(key)

    def manifest_url(self, handler_name: str) -> str:
        return self.url_for(f"extensions/{handler_name}/manifest.xml")

    def publish_extension(self, handler_name: str, version: str, package: bytes) -> str:
        """Serve a handler zip and (re)write its manifest; returns the manifest URL."""
        with self._publish_lock:
            zip_url = self.put(
                f"extensions/{handler_name}/{handler_name}__{version}.zip",
                package,
                "application/zip",
            )
            versions = self._versions.setdefault(handler_name, {})
            versions[version] = zip_url
            listing = sorted(versions.items(), key=lambda kv: _version_key(kv[0]))
            manifest = documents.plugin_version_manifest_xml([(v, [u]) for v, u in listing])
            self.put(f"extensions/{handler_name}/manifest.xml", manifest, "text/xml")
        return self.manifest_url(handler_name)

    def publish_ga_family(self, family: str) -> str:
        """An empty GA-family manifest: agents checking for updates find none."""
        return self.put(
            f"ga/{family}_manifest.xml", documents.plugin_version_manifest_xml([]), "text/xml"
        )

    def load_directory(self, directory: Path) -> list[str]:
        """Publish every ``<Handler>__<version>.zip`` in a directory (the image ships
        the lab's handler packages there); returns the manifest URLs."""
        urls = []
        for path in sorted(directory.glob("*__*.zip")):
            handler_name, _, version = path.name[: -len(".zip")].rpartition("__")
            if handler_name and version:
                urls.append(self.publish_extension(handler_name, version, path.read_bytes()))
        return urls


def _version_key(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        try:
            parts.append(int(part))
        except ValueError:
            parts.append(-1)
    return tuple(parts)
