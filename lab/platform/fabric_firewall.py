"""Rules in the fabric's own network namespace: what the fabric relays stays a VM's reach.

The host firewall (:mod:`lab.provision.guest_reach`) keeps a guest's packets away from
every fabric port a VM does not use. One path does not cross it: the lab's HTTP proxy
(tinyproxy) runs *in* the fabric, so a guest asking it for ``http://127.0.0.1:8080/``
would have the fabric connect to itself. These rules, in the fabric's namespace (guests
do not share it, and only the fabric has ``NET_ADMIN`` there), refuse every new TCP
connection from inside the fabric to one of its own addresses except on the ports a VM
may use anyway — so the proxy relays no more than a guest could reach directly. The
fabric's services never call each other over TCP except on those ports; Docker's
embedded DNS (a DNAT on loopback) is let through.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

from lab.platform.package_mirror import MIRROR_PORT
from lab.platform.proxy import PROXY_PORT
from lab.platform.roster import HOSTPLUGIN_PORT, WIRESERVER_PORT

COMMENT = "snaplab: the fabric relays only what a VM reaches"
DNS_PORT = 53
VM_PORTS = (WIRESERVER_PORT, HOSTPLUGIN_PORT, MIRROR_PORT, PROXY_PORT, DNS_PORT)

Run = Callable[..., "subprocess.CompletedProcess[str]"]


class FirewallError(RuntimeError):
    """The fabric could not put its own rules in place."""


def local_rules(ports: Sequence[int] = VM_PORTS) -> list[list[str]]:
    """``OUTPUT`` rules, in order, for TCP the fabric sends to itself (over ``lo``)."""
    comment = ["-m", "comment", "--comment", COMMENT]
    listed = ",".join(str(p) for p in ports)
    return [
        ["-o", "lo", "-p", "tcp", "-m", "conntrack", "--ctstate", "DNAT", *comment, "-j", "ACCEPT"],
        [
            "-o",
            "lo",
            "-p",
            "tcp",
            "-m",
            "conntrack",
            "--ctstate",
            "NEW",
            "-m",
            "multiport",
            "!",
            "--dports",
            listed,
            *comment,
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ],
    ]


def apply(run: Run = subprocess.run) -> None:
    """Append the rules to ``OUTPUT`` once (a restarted fabric finds them there)."""
    for rule in local_rules():
        present = run(
            ["iptables", "-w", "-C", "OUTPUT", *rule], capture_output=True, text=True, check=False
        )
        if present.returncode == 0:
            continue
        done = run(
            ["iptables", "-w", "-A", "OUTPUT", *rule], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise FirewallError(f"iptables -A OUTPUT: {(done.stderr or '').strip()}")
