"""dhcp-disabled: static addressing with DHCP blocked, then the host's WireServer moves.

FACTS.md §1 cause 4e: with DHCP disabled the agent gets no host/fabric address from
option 245. What the real agent does (WALinuxAgent 2.7, ``ProtocolUtil`` and
``DhcpHandler``): at every start the daemon forgets its cached endpoint
(``/var/lib/waagent/WireServerEndpoint``) and looks again — a host route to
168.63.129.16, else the newest unexpired lease in ``/var/lib/dhcp/dhclient.*.leases``
carrying ``option unknown-245``, else *its own DHCP request*. So turning DHCP off in the
guest is harmless until two more things hold, and this fault makes all three real:

1. guest (its administrator's doing): eth0 set to the address Azure gave it, statically,
   in whichever network stack manages it — NetworkManager: ``nmcli connection modify
   ... ipv4.method manual`` and the connection brought up again; netplan (systemd-networkd):
   a later netplan file that turns ``dhcp4`` off with the address and gateway, then what
   ``netplan apply`` does for networkd (``netplan generate``, ``networkctl reload`` and
   ``reconfigure``; ``apply`` itself also triggers udev, which a container's read-only
   ``/sys`` refuses); ifupdown: ``iface eth0 inet static`` and the DHCP client stopped
   (SIGTERM: the address and the old lease stay, as after a reboot into the static
   config) — and a hardened firewall that drops DHCP, outbound to UDP 67 and inbound to
   UDP 68. The outbound rule is what stops the agent's own request (it opens inbound
   UDP 68 for itself, never outbound 67), the agent's only way to option 245 on the
   stacks whose lease files its Debian code does not read;
2. platform: the VM is redeployed to a host whose WireServer has another address
   (:mod:`lab.platform.redeploy` via ``POST /control/v1/vms/<vm>/redeploy``): the old
   address stops answering, DHCP would now say the new one in option 245;
3. the redeploy restarts the VM, so its agent starts over: the stale lease names the
   old address, which is gone; its DHCP request cannot leave the VM; it finds no
   WireServer, reports nothing, and the platform marks it Not Ready.

The fault returns once the platform shows the agent Not Ready. The guest stays up
(a container reboot would also re-run the network stack, which the lab does not need): the
redeploy's reboot is the agent service restarting, which is all the agent sees of it.
"""

from __future__ import annotations

from lab.errors import PlatformError
from lab.faults import register
from lab.faults.agent_stopped import FIND_AGENT_UNIT
from lab.faults.base import FaultError, FaultTarget
from lab.faults.stale_agent import wait_for_agent_status
from lab.platform.redeploy import new_host_address
from lab.provision.fabric_client import FabricClient

FIREWALL_COMMENT = "static addressing: no DHCP"

# The netplan file a static configuration is written to: read after the distribution's
# own files (netplan merges them in name order), so its eth0 settings win.
NETPLAN_STATIC = "/etc/netplan/90-static-eth0.yaml"

_STATIC_WITHOUT_DHCP = f"""
set -e
cidr=$(ip -4 -o addr show dev eth0 | awk '{{print $4; exit}}')
gateway=$(ip -4 route show default | awk '{{print $3; exit}}')
test -n "$cidr"
nm_device=$(nmcli -g GENERAL.STATE device show eth0 2>/dev/null || true)
if systemctl is-active --quiet NetworkManager && [ -n "$nm_device" ] \\
        && [ "${{nm_device%% *}}" != 10 ]; then
    connection=$(nmcli -g GENERAL.CONNECTION device show eth0)
    test -n "$connection"
    nmcli connection modify "$connection" ipv4.method manual ipv4.addresses "$cidr" \\
        ${{gateway:+ipv4.gateway "$gateway"}}
    nmcli connection up "$connection" >/dev/null
elif systemctl is-active --quiet systemd-networkd && command -v netplan >/dev/null; then
    routes=""
    if [ -n "$gateway" ]; then routes="      routes: [{{to: default, via: $gateway}}]"; fi
    cat > {NETPLAN_STATIC} <<EOF
# Static addressing: the address the VM got at deployment, set by hand.
network:
  version: 2
  ethernets:
    eth0:
      dhcp4: false
      addresses: [$cidr]
$routes
EOF
    chmod 600 {NETPLAN_STATIC}
    # What 'netplan apply' does for networkd, without the udev trigger a container's
    # read-only /sys refuses.
    netplan generate
    networkctl reload
    networkctl reconfigure eth0
else
    cat > /etc/network/interfaces.d/eth0 <<EOF
# Static addressing: the address the VM got at deployment, set by hand.
auto eth0
iface eth0 inet static
    address $cidr
${{gateway:+    gateway $gateway}}
EOF
    for pid in $(pidof dhclient); do kill -TERM "$pid"; done
    for i in $(seq 1 50); do pidof dhclient >/dev/null || break; sleep 0.1; done
    ! pidof dhclient >/dev/null
fi
iptables -A OUTPUT -p udp --dport 67 -m comment --comment "{FIREWALL_COMMENT}" -j DROP
iptables -A INPUT -p udp --dport 68 -m comment --comment "{FIREWALL_COMMENT}" -j DROP
for i in $(seq 1 50); do
    ip -4 -o addr show dev eth0 | grep -q " $cidr " && exit 0
    sleep 0.2
done
echo "eth0 lost its address $cidr" >&2
exit 1
"""

# The redeploy restarts the VM: its agent starts over under its own service.
_RESTART_AGENT = FIND_AGENT_UNIT + 'systemctl restart "$agent_unit"\n'


def redeploy(target: FaultTarget, wireserver_ip: str) -> dict[str, str]:
    """Ask the lab's platform to move the VM to a host answering at ``wireserver_ip``."""
    try:
        answer = FabricClient(target.roster.fabric_ip).redeploy(target.vm, wireserver_ip)
    except PlatformError as exc:
        raise FaultError(f"{target.vm}: redeploy refused: {exc}") from exc
    return {str(k): str(v) for k, v in answer.items()}


class DhcpDisabled:
    id = "dhcp-disabled"
    summary = (
        "static addressing, DHCP client stopped and DHCP dropped by the guest firewall; "
        "then a redeploy moves the host's WireServer and restarts the agent"
    )

    def inject(self, target: FaultTarget) -> None:
        address = str(target.params.get("wireserver_ip") or new_host_address(target.roster.subnet))
        target.run(_STATIC_WITHOUT_DHCP)
        redeploy(target, address)
        target.run(_RESTART_AGENT)
        wait_for_agent_status(target, "Not Ready")


register(DhcpDisabled())
