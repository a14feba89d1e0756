"""extension-update-failed: a newer VMSnapshot version is offered but cannot be installed.

The platform publishes a newer version of the backup extension in the handler's
manifest whose package is broken: ``corrupt`` (a package cut short, which no unzip can
read) or ``missing`` (404 on every channel: directly and through the HostGAPlugin's
``/extensionArtifact``). The next backup asks for the newest version, as CRP does for an
extension that auto-upgrades minor versions, and the real agent's update fails in its
own way (for 2.7.3: two rounds of download attempts a minute apart, during which it
reports nothing). The change is on the platform side only, through the fabric's
control API; the guest is not touched.
"""

from __future__ import annotations

from lab.errors import PlatformError
from lab.extension.protocol import HANDLER_NAME
from lab.faults import register
from lab.faults.base import FaultError, FaultTarget
from lab.provision.fabric_client import FabricClient

DEFAULT_PACKAGE = "corrupt"


def next_version(versions: list[str]) -> str:
    """One build after the newest offered version (1.0.92.0 -> 1.0.93.0)."""
    newest = max(versions, key=lambda v: tuple(int(p) for p in v.split(".")))
    parts = [int(p) for p in newest.split(".")]
    parts[2 if len(parts) > 2 else -1] += 1
    return ".".join(str(p) for p in parts)


class ExtensionUpdateFailed:
    id = "extension-update-failed"
    summary = "the platform offers a newer VMSnapshot version whose package is broken"

    def inject(self, target: FaultTarget) -> None:
        vm = target.guest.name  # the VM must exist, although nothing is done to it
        fabric = FabricClient(target.roster.fabric_ip)
        package = str(target.params.get("package", DEFAULT_PACKAGE))
        try:
            offered = [v["version"] for v in fabric.extension_versions(HANDLER_NAME)]
            version = str(target.params.get("version") or next_version(offered))
            fabric.publish_broken_version(HANDLER_NAME, version, package)
        except PlatformError as exc:
            raise FaultError(f"{vm}: cannot publish a broken {HANDLER_NAME}: {exc}") from exc


FAULT = register(ExtensionUpdateFailed())
