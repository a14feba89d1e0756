"""What a user asks for: a lab name and its VMs (``--vm NAME[:agent=VERSION,guest=VARIANT]``).

``guest=VARIANT`` picks a guest variant (:mod:`lab.provision.guest_variants`): the same
Debian guest with another distribution's network stack or agent unit name."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from lab.errors import BadInput
from lab.platform.timescale import DEFAULT_TIME_SCALE
from lab.platform.timescale import time_scale as default_time_scale
from lab.provision.guest_variants import guest_variant
from lab.provision.images import DEFAULT_AGENT, agent_flavor
from lab.provision.labels import LAB_NAME_PATTERN, VM_NAME_PATTERN

DEFAULT_LAB = "default"
MAX_GUESTS = 40


@dataclass(frozen=True)
class VmSpec:
    name: str
    agent: str = DEFAULT_AGENT
    guest: str | None = None  # a guest variant; None: the base Debian guest


@dataclass(frozen=True)
class LabSpec:
    name: str
    vms: tuple[VmSpec, ...]
    # Azure's clock in this lab runs this many times faster (the fabric's
    # SNAPLAB_TIME_SCALE); by default the caller's SNAPLAB_TIME_SCALE, else 240.
    time_scale: float = DEFAULT_TIME_SCALE


class GuestImageWanted(Protocol):
    """Anything naming a guest image: a :class:`VmSpec`, a scenario's VM declaration."""

    @property
    def agent(self) -> str: ...

    @property
    def guest(self) -> str | None: ...


def guest_images(
    vms: Iterable[GuestImageWanted],
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """``(agent versions of plain guests, (agent, variant) pairs)`` these VMs need, sorted
    and without repeats: the arguments of :func:`lab.provision.images.all_recipes`."""
    listed = list(vms)
    plain = sorted({vm.agent for vm in listed if vm.guest is None})
    variants = sorted({(vm.agent, vm.guest) for vm in listed if vm.guest is not None})
    return tuple(plain), tuple(variants)


def vm_option(name: str, agent: str, guest: str | None = None) -> str:
    """The ``--vm`` text :func:`parse_vm` reads back: ``vm1:agent=2.7.3.0[,guest=netplan]``."""
    return f"{name}:agent={agent}" + (f",guest={guest}" if guest else "")


def parse_vm(text: str) -> VmSpec:
    """Parse ``vm1``, ``vm1:agent=2.2.47`` or ``vm1:agent=2.2.47,guest=netplan``; errors
    name the option and the bad part."""
    name, _, options = text.partition(":")
    if not VM_NAME_PATTERN.match(name):
        raise BadInput(
            f"--vm {text!r}: VM name must be lowercase letters, digits and '-', "
            "starting with a letter, at most 15 characters"
        )
    agent, guest = DEFAULT_AGENT, None
    for option in filter(None, options.split(",")):
        key, sep, value = option.partition("=")
        if key == "agent" and sep and value:
            agent = agent_flavor(value).version
        elif key == "guest" and sep and value:
            guest = guest_variant(value, f"--vm {text!r}").name
        else:
            raise BadInput(
                f"--vm {text!r}: unknown option {option!r} "
                "(expected agent=VERSION or guest=VARIANT)"
            )
    return VmSpec(name=name, agent=agent, guest=guest)


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
