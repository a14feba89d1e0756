"""Names and labels every Docker object of a lab carries.

Cleanup is driven by the label alone (``snaplab.lab=<lab>``), so anything a killed
run left behind can be found again without any state file.
"""

from __future__ import annotations

import re

# The host-firewall names are shared with the ARM twin (which may not import lab.provision).
from lab.platform.host_rules import RULE_COMMENT_PREFIX, bridge_name, rule_comment

__all__ = ["RULE_COMMENT_PREFIX", "bridge_name", "rule_comment"]

LAB_LABEL = "snaplab.lab"
ROLE_LABEL = "snaplab.role"
VM_LABEL = "snaplab.vm"
AGENT_LABEL = "snaplab.agent"
ARM_PORT_LABEL = "snaplab.arm.port"
ARM_TOKEN_LABEL = "snaplab.arm.token"
# The fabric's control API token (on the fabric container; guests never see labels).
CONTROL_TOKEN_LABEL = "snaplab.control.token"
IMAGE_LABEL = "snaplab.image"
RECIPE_LABEL = "snaplab.recipe"

LAB_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
VM_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,14}$")


def lab_labels(lab: str, role: str, **extra: str) -> dict[str, str]:
    return {LAB_LABEL: lab, ROLE_LABEL: role, **extra}


def container_name(lab: str, part: str) -> str:
    return f"snaplab-{lab}-{part}"


def network_name(lab: str) -> str:
    return f"snaplab-{lab}"
