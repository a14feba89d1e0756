"""The fabric's artifact store: extension manifests and handler zips under ``/artifacts/``.

Besides the lab's own handler packages, the platform can publish a *broken* newer
version of a handler (:meth:`ArtifactStore.publish_broken`): listed in the manifest like
any other, but its zip is damaged (``corrupt``: a package cut short, which no unzip can
read) or absent on every channel (``missing``: 404 directly and through the
HostGAPlugin, which serves only this store). That is the platform side of "the backup
extension fails to update": the agent is offered the version and cannot install it.
Withdrawing a version (:meth:`ArtifactStore.withdraw`) is what the publisher's rollback
does: the manifest stops listing it and its package is gone. Microsoft's side of a
support case (:mod:`lab.platform.arm.support_engineer`, through the control API) reads
each listed version's package state here and withdraws a damaged one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from lab.platform import documents

PACKAGE_OK = "ok"
PACKAGE_CORRUPT = "corrupt"
PACKAGE_MISSING = "missing"
BROKEN_PACKAGES = (PACKAGE_CORRUPT, PACKAGE_MISSING)


@dataclass(frozen=True)
class Artifact:
    data: bytes
    content_type: str


@dataclass(frozen=True)
class PublishedVersion:
    """One version a handler's manifest lists, and what its package is."""

    version: str
    url: str
    package: str  # PACKAGE_OK, PACKAGE_CORRUPT or PACKAGE_MISSING

    def to_json(self) -> dict[str, str]:
        return {"version": self.version, "url": self.url, "package": self.package}


class VersionError(ValueError):
    """A version that cannot be published or withdrawn as asked."""


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
        self._versions: dict[str, dict[str, PublishedVersion]] = {}

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

    def zip_path(self, handler_name: str, version: str) -> str:
        return f"extensions/{handler_name}/{handler_name}__{version}.zip"

    def publish_extension(self, handler_name: str, version: str, package: bytes) -> str:
        """Serve a handler zip and (re)write its manifest; returns the manifest URL."""
        with self._publish_lock:
            zip_url = self.put(self.zip_path(handler_name, version), package, "application/zip")
            self._list_version(handler_name, PublishedVersion(version, zip_url, PACKAGE_OK))
        return self.manifest_url(handler_name)

    def publish_broken(self, handler_name: str, version: str, package: str) -> PublishedVersion:
        """List ``version`` in the manifest with a damaged or absent package.

        ``corrupt`` serves the first half of the newest good package (a download cut
        short: no end-of-archive record, so no unzip reads it); ``missing`` serves
        nothing. Refuses a version that is already listed, and a handler with no good
        package to damage.
        """
        if package not in BROKEN_PACKAGES:
            raise VersionError(
                f"package must be one of {', '.join(BROKEN_PACKAGES)}, got {package!r}"
            )
        _check_version(version)
        with self._publish_lock:
            listed = self._versions.get(handler_name, {})
            if version in listed:
                raise VersionError(f"{handler_name} {version} is already published")
            good = [v for v in listed.values() if v.package == PACKAGE_OK]
            if not good:
                raise VersionError(f"{handler_name} has no published package to break")
            path = self.zip_path(handler_name, version)
            if package == PACKAGE_CORRUPT:
                source = self.get(self.zip_path(handler_name, _newest(good).version))
                assert source is not None
                url = self.put(path, source.data[: len(source.data) // 2], "application/zip")
            else:
                url = self.url_for(path)
            published = PublishedVersion(version, url, package)
            self._list_version(handler_name, published)
        return published

    def withdraw(self, handler_name: str, version: str) -> PublishedVersion:
        """Stop offering a version: the manifest drops it and its package is removed.

        Refuses to withdraw the last good package (the platform must always offer a
        version the next backup can install).
        """
        with self._publish_lock:
            listed = self._versions.get(handler_name, {})
            published = listed.get(version)
            if published is None:
                raise KeyError(f"{handler_name} {version} is not published")
            remaining_good = [
                v for v in listed.values() if v.package == PACKAGE_OK and v.version != version
            ]
            if not remaining_good:
                raise VersionError(f"{handler_name} {version} is the last good package")
            del listed[version]
            with self._lock:
                self._files.pop(self.zip_path(handler_name, version), None)
            self._write_manifest(handler_name)
        return published

    def versions(self, handler_name: str) -> list[PublishedVersion]:
        """The versions the handler's manifest lists, oldest first."""
        with self._publish_lock:
            listed = self._versions.get(handler_name, {})
            return sorted(listed.values(), key=lambda v: _version_key(v.version))

    def latest_version(self, handler_name: str) -> str | None:
        """The newest version offered, good or not: what CRP puts in the goal state of a
        handler that auto-upgrades minor versions."""
        listed = self.versions(handler_name)
        return listed[-1].version if listed else None

    def _list_version(self, handler_name: str, published: PublishedVersion) -> None:
        self._versions.setdefault(handler_name, {})[published.version] = published
        self._write_manifest(handler_name)

    def _write_manifest(self, handler_name: str) -> None:
        listing = sorted(
            self._versions.get(handler_name, {}).values(), key=lambda v: _version_key(v.version)
        )
        manifest = documents.plugin_version_manifest_xml([(v.version, [v.url]) for v in listing])
        self.put(f"extensions/{handler_name}/manifest.xml", manifest, "text/xml")

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


def _check_version(version: str) -> None:
    parts = version.split(".") if isinstance(version, str) else []
    if not 2 <= len(parts) <= 4 or not all(p.isdigit() and len(p) <= 9 for p in parts):
        raise VersionError(f"version must look like 1.0.93.0, got {version!r}")


def _newest(versions: list[PublishedVersion]) -> PublishedVersion:
    return max(versions, key=lambda v: _version_key(v.version))


def _version_key(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        try:
            parts.append(int(part))
        except ValueError:
            parts.append(-1)
    return tuple(parts)
