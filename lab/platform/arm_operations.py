"""The ARM twin's long-running operations: power operations run in the background.

ARM answers a power action with 202 and an operation resource the client polls, so each
operation runs on its own thread while :class:`OperationStore` records how it is going.
A VM has at most one power operation running at a time, as in Azure, where a second one
is refused (:class:`OperationConflict`, answered 409 OperationNotAllowed). A failed
operation is not an HTTP error: its operation resource ends "Failed".

Runs inside the twin's container on Debian's Python: stdlib only, and nothing from
``lab`` outside :mod:`lab.platform`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from lab.platform.arm_power import PowerAction, PowerBackend, PowerError

# The twin logs under one name, whichever of its modules speaks.
_log = logging.getLogger("lab.platform.armtwin")


class OperationConflict(Exception):
    """A VM already has a power operation running; ARM refuses a second one (409)."""

    def __init__(self, running: Operation) -> None:
        super().__init__(f"{running.action.value} is in progress on {running.vm}")
        self.running = running


@dataclass(frozen=True)
class Operation:
    """One long-running power operation, as its ARM operation resource reports it."""

    id: str
    vm: str
    action: PowerAction
    started: datetime
    ended: datetime | None = None
    error: str | None = None

    @property
    def status(self) -> str:
        if self.ended is None:
            return "InProgress"
        return "Failed" if self.error is not None else "Succeeded"


class OperationStore:
    """The power operations of this twin: at most one running per VM, a bounded history."""

    def __init__(self, keep: int = 256) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._ops: OrderedDict[str, Operation] = OrderedDict()

    def begin(self, vm: str, action: PowerAction) -> Operation:
        """Record a new operation; raises :class:`OperationConflict` if ``vm`` is busy."""
        with self._lock:
            running = self._running(vm)
            if running is not None:
                raise OperationConflict(running)
            op = Operation(id=str(uuid.uuid4()), vm=vm, action=action, started=_now())
            self._ops[op.id] = op
            while len(self._ops) > self._keep:
                oldest = next(iter(self._ops.values()))
                if oldest.ended is None:
                    break  # never forget a running operation
                self._ops.popitem(last=False)
            return op

    def finish(self, op_id: str, error: str | None = None) -> None:
        with self._lock:
            op = self._ops.get(op_id)
            if op is not None:
                self._ops[op_id] = replace(op, ended=_now(), error=error)

    def get(self, op_id: str) -> Operation | None:
        with self._lock:
            return self._ops.get(op_id)

    def running(self, vm: str) -> Operation | None:
        with self._lock:
            return self._running(vm)

    def _running(self, vm: str) -> Operation | None:
        return next((o for o in self._ops.values() if o.vm == vm and o.ended is None), None)


def run_in_background(
    operations: OperationStore, power: PowerBackend, op: Operation, container: str
) -> None:
    """Run ``op`` on ``container`` on a background thread; ``operations`` records its end."""
    threading.Thread(
        target=_run, args=(operations, power, op, container), name=f"arm-{op.id}", daemon=True
    ).start()


def _run(operations: OperationStore, power: PowerBackend, op: Operation, container: str) -> None:
    """Carry out a power operation in the background and record how it ended."""
    error: str | None = None
    try:
        power.act(container, op.action)
    except PowerError as exc:
        error = str(exc)
    except Exception as exc:  # the operation must end, whatever went wrong
        _log.exception("power operation %s on %s failed", op.action.value, op.vm)
        error = f"Unexpected failure: {exc}"
    operations.finish(op.id, error)
    _log.info("operation %s (%s %s) ended: %s", op.id, op.action.value, op.vm, error or "ok")


def _now() -> datetime:
    return datetime.now(UTC)
