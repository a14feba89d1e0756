"""power-state-stale: the platform's view of a VM's power state stops following the VM.

A platform fault, not a guest one. Normally the host sees a VM's OS halt and the
platform shows the VM ``PowerState/stopped`` (Azure's documented behaviour). This fault
makes the platform's view of the VM stale, through the fabric's control API: the host's
reports about the VM are dropped, so after a shutdown from inside the platform keeps
showing what it last knew, ``running``. That is the anomaly of Microsoft's 2016
troubleshooting article (cause 4b: a VM shut down from inside "so its status is reported
wrongly"). The platform's own power operations (power off, start, restart) refresh the
view, as its fix says. The guest is not touched.
"""

from __future__ import annotations

from lab.errors import PlatformError
from lab.faults import register
from lab.faults.base import FaultError, FaultTarget
from lab.provision.fabric_client import FabricClient


class PowerStateStale:
    id = "power-state-stale"
    summary = "the platform's view of the VM's power state is stale (host reports dropped)"

    def inject(self, target: FaultTarget) -> None:
        vm = target.guest.name
        try:
            FabricClient(target.roster.fabric_ip).set_power_view_stale(vm, True)
        except PlatformError as exc:
            raise FaultError(f"{vm}: cannot make the platform's power view stale: {exc}") from exc


FAULT = register(PowerStateStale())
