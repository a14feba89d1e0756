"""What a user asks for: a lab name and its VMs (``--vm NAME[:agent=VERSION]``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lab.errors import BadInput
from lab.platform.timescale import DEFAULT_TIME_SCALE
from lab.platform.timescale import time_scale as default_time_scale
from lab.provision.images import DEFAULT_AGENT, agent_flavor
from lab.provision.labels import LAB_NAME_PATTERN, VM_NAME_PATTERN

DEFAULT_LAB = "default"
MAX_GUESTS = 40


@dataclass(frozen=True)
class VmSpec:
    name: str
    agent: str = DEFAULT_AGENT


@dataclass(frozen=True)
class LabSpec:
    name: str
    vms: tuple[VmSpec, ...]
    # Azure's clock in this lab runs this many times faster (the fabric's
    # SNAPLAB_TIME_SCALE); by default the caller's SNAPLAB_TIME_SCALE, else 240.
    time_scale: float = DEFAULT_TIME_SCALE


def parse_vm(text: str) -> VmSpec:
    """Parse ``vm1`` or ``vm1:agent=2.2.47``; errors name the option and the bad part."""
    name, _, options = text.partition(":")
    if not VM_NAME_PATTERN.match(name):
        raise BadInput(
            f"--vm {text!r}: VM name must be lowercase letters, digits and '-', "
            "starting with a letter, at most 15 characters"
        )
    agent = DEFAULT_AGENT
    for option in filter(None, options.split(",")):
        key, sep, value = option.partition("=")
        if key != "agent" or not sep or not value:
            raise BadInput(f"--vm {text!r}: unknown option {option!r} (expected agent=VERSION)")
        agent = agent_flavor(value).version
    return VmSpec(name=name, agent=agent)


def lab_spec(name: str, vm_options: tuple[str, ...], time_scale: float | None = None) -> LabSpec:
    if not LAB_NAME_PATTERN.match(name):
        raise BadInput(
            f"--lab {name!r}: lab name must be lowercase letters, digits and '-', "
            "starting with a letter, at most 20 characters"
        )
    vms = tuple(parse_vm(v) for v in vm_options) or (VmSpec("vm1"),)
    seen: set[str] = set()
    for vm in vms:
        if vm.name in seen:
            raise BadInput(f"--vm {vm.name!r}: VM named twice")
        seen.add(vm.name)
    if len(vms) > MAX_GUESTS:
        raise BadInput(f"--vm: at most {MAX_GUESTS} VMs per lab, got {len(vms)}")
    scale = default_time_scale() if time_scale is None else time_scale
    if not math.isfinite(scale) or scale <= 0:
        raise BadInput(f"time scale {scale!r}: must be a positive number")
    return LabSpec(name=name, vms=vms, time_scale=scale)
