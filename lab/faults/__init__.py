"""Failure mechanisms, one module each, registered by id in :data:`FAULTS`."""

from __future__ import annotations

from lab.errors import BadInput
from lab.faults.base import Fault, FaultError, FaultTarget

FAULTS: dict[str, Fault] = {}


def register(fault: Fault) -> Fault:
    FAULTS[fault.id] = fault
    return fault


def fault_by_id(fault_id: str) -> Fault:
    _load_all()
    try:
        return FAULTS[fault_id]
    except KeyError:
        known = ", ".join(sorted(FAULTS)) or "none"
        raise BadInput(f"unknown fault {fault_id!r} (known: {known})") from None


def _load_all() -> None:
    """Import every fault module so it registers itself."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        if module.name not in ("base",):
            importlib.import_module(f"{__name__}.{module.name}")


__all__ = ["FAULTS", "Fault", "FaultError", "FaultTarget", "fault_by_id", "register"]
