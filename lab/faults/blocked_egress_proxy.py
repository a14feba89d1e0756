"""blocked-egress-proxy: storage denied by the NSG, on a VM whose way out is a proxy.

FACTS.md §1 cause 1 names two fixes for "no storage access": open the NSG, or "route
HTTP through a proxy". This fault sets up the situation where the second is the one to
apply: an organisation whose VMs reach the outside through its HTTP proxy, and whose
network policy denies storage to the VM directly.

* The NSG rule is exactly ``blocked-egress``'s (:mod:`lab.faults.blocked_egress`,
  created through the lab's Microsoft.Network and held in the host firewall by the ARM
  twin): the VM's outbound traffic to the ``Storage`` tag dropped.
* The organisation's proxy is configured system-wide in the guest, as such images do
  (``/etc/environment``: ``http_proxy``/``https_proxy``/``no_proxy``), so people's
  shells and tools use it; ``/etc/waagent.conf`` names no ``HttpProxy``, and a systemd
  service never reads ``/etc/environment``, so the agent and the VMSnapshot extension go
  straight at storage and hit the NSG. The proxy is the lab's (tinyproxy on the fabric,
  :mod:`lab.platform.proxy`), found by the name the lab's DNS answers; the NSG allows it,
  as Azure never filters the host.

That system-wide proxy is what tells this case from plain ``blocked-egress`` in the
guest: same block, but a working proxy the agent does not use.
"""

from __future__ import annotations

import socket

from lab.faults import register
from lab.faults.base import FaultError, FaultTarget
from lab.faults.blocked_egress import BlockedEgress
from lab.platform.proxy import PROXY_HOST, PROXY_PORT

PROXY_URL = f"http://{PROXY_HOST}:{PROXY_PORT}/"
# The addresses Azure's guidance keeps off a proxy: the WireServer and IMDS.
NO_PROXY = "localhost,127.0.0.1,168.63.129.16,169.254.169.254"

_ORGANISATION_PROXY = f"""
set -e
sed -i -E '/^(http|https|no)_proxy=/Id' /etc/environment
cat >> /etc/environment <<'EOF'
http_proxy={PROXY_URL}
https_proxy={PROXY_URL}
no_proxy={NO_PROXY}
EOF
getent hosts {PROXY_HOST} >/dev/null
"""


def proxy_answers(target: FaultTarget, timeout: float = 5.0) -> bool:
    """Whether the lab's proxy accepts connections (it runs on the fabric)."""
    try:
        with socket.create_connection((target.roster.fabric_ip, PROXY_PORT), timeout=timeout):
            return True
    except OSError:
        return False


class BlockedEgressProxy:
    id = "blocked-egress-proxy"
    summary = (
        "blocked-egress's NSG rule (traffic to Storage dropped) on a VM whose organisation's "
        "HTTP proxy is set system-wide but not in waagent.conf"
    )

    def inject(self, target: FaultTarget) -> None:
        if not proxy_answers(target):
            raise FaultError(
                f"lab {target.roster.lab!r} has no HTTP proxy answering on "
                f"{target.roster.fabric_ip}:{PROXY_PORT} (fabric image without tinyproxy?)"
            )
        target.run(_ORGANISATION_PROXY)
        BlockedEgress().inject(target)


register(BlockedEgressProxy())
