"""guest-shutdown: the OS is shut down from inside, as at the VM's console.

Someone at the VM's console (RDP/SSH on Azure) runs ``poweroff``: the OS halts and its
agent with it. The fault does exactly that: it asks the guest's systemd to power off
(``docker exec``, the console) and waits until the guest's container has exited, as a
VM's OS halts. Nothing on the platform is touched: the host sees the halt and the
platform shows the VM ``PowerState/stopped``, as Azure does, unless the platform's view
of the VM is stale (the ``power-state-stale`` fault, the 2016 article's anomaly).
"""

from __future__ import annotations

import time

from lab.faults import register
from lab.faults.base import FaultError, FaultTarget

HALT_TIMEOUT = 60.0


class GuestShutdown:
    id = "guest-shutdown"
    summary = "the guest OS was shut down from inside (systemctl poweroff)"

    def inject(self, target: FaultTarget) -> None:
        # --no-block: the command returns before systemd tears down the exec session.
        target.run("systemctl poweroff --no-block")
        container = target.container
        deadline = time.monotonic() + HALT_TIMEOUT
        while True:
            container.reload()
            if container.status != "running":
                return
            if time.monotonic() > deadline:
                raise FaultError(f"{target.vm}: the OS did not halt within {HALT_TIMEOUT:.0f} s")
            time.sleep(0.2)


FAULT = register(GuestShutdown())
