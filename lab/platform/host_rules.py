"""The names a lab's rules carry in the host firewall, one place for the provisioner and
the ARM twin.

The provisioner (:mod:`lab.provision`) builds a lab's walls in the host's ``DOCKER-USER``
chain; the ARM twin (:mod:`lab.platform.arm.network_firewall`, in its own container on
the host's network) adds and removes the VMs' NSG rules beside them. Both must agree on
the lab bridge's name, the comment teardown finds a lab's rules by, and the name of the
lab's guard chain that NSG rules sit below, and the twin may not import
:mod:`lab.provision`: so the names live here.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib

# Every rule of a lab carries this comment first, so `down` (and `down --all`) finds it.
RULE_COMMENT_PREFIX = "snaplab.lab="
# The lab's guard chain (lab.provision.guest_reach) is named with this prefix.
GUARD_CHAIN_PREFIX = "SNAPLAB-"


def bridge_name(lab: str) -> str:
    """A Linux bridge name (at most 15 characters) that is stable for a lab name."""
    return "snl-" + hashlib.sha256(lab.encode()).hexdigest()[:11]


def rule_comment(lab: str) -> str:
    return RULE_COMMENT_PREFIX + lab


def guard_chain_name(lab: str) -> str:
    """The lab's guard chain: stable for a lab name, within iptables' 28 characters."""
    return GUARD_CHAIN_PREFIX + hashlib.sha256(lab.encode()).hexdigest()[:11]
