"""Failure mechanisms, one module each (``lab/faults/<id with _>.py``), registered by id.

A fault is looked up by importing only its own module, so a broken module never takes
down the others.
"""

from __future__ import annotations

import importlib
import pkgutil

from lab.errors import BadInput
from lab.faults.base import Fault, FaultError, FaultTarget

FAULTS: dict[str, Fault] = {}
_NOT_FAULTS = ("base",)


def register(fault: Fault) -> Fault:
    FAULTS[fault.id] = fault
    return fault


def known_fault_ids() -> list[str]:
    """Fault ids by module name (without importing them) and any registered already."""
    modules = {
        m.name.replace("_", "-")
        for m in pkgutil.iter_modules(__path__)
        if m.name not in _NOT_FAULTS
    }
    return sorted(modules | set(FAULTS))


def fault_by_id(fault_id: str) -> Fault:
    if fault_id not in FAULTS and fault_id in known_fault_ids():
        importlib.import_module(f"{__name__}.{fault_id.replace('-', '_')}")
    try:
        return FAULTS[fault_id]
    except KeyError:
        known = ", ".join(known_fault_ids()) or "none"
        raise BadInput(f"unknown fault {fault_id!r} (known: {known})") from None


__all__ = [
    "FAULTS",
    "Fault",
    "FaultError",
    "FaultTarget",
    "fault_by_id",
    "known_fault_ids",
    "register",
]
