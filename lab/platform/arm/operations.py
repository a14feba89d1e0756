"""The ARM twin's long-running operations, whichever resource provider starts them.

ARM answers a power action or an extension DELETE with 202 and an operation resource
the client polls, so each operation runs on its own thread while
:class:`OperationStore` records how it is going. A VM has at most one operation running
at a time, as in Azure, where a second one is refused (:class:`OperationConflict`,
answered 409 OperationNotAllowed). A failed operation is not an HTTP error: its
operation resource ends "Failed", with the error the work raised
(:class:`OperationError`, or the power backend's :class:`PowerError`).

Runs inside the twin's container on Debian's Python: stdlib only, and nothing from
``lab`` outside :mod:`lab.platform`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import ClassVar, Protocol

from lab.platform.arm.power import PowerAction, PowerError

# The twin logs under one name, whichever of its modules speaks.
_log = logging.getLogger("lab.platform.arm")


# The code of a failed operation's error when the work gives none.
DEFAULT_ERROR_CODE = "OperationFailed"


class OperationError(Exception):
    """The operation's work failed the way Azure reports it: an ARM error code and text."""

    def __init__(self, message: str, code: str = DEFAULT_ERROR_CODE) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ExtensionDelete:
    """Deleting one VM extension: its ARM name and the handler the agent knows."""

    name: str
    handler: str
    value: ClassVar[str] = "delete"


class Action(Protocol):
    """What an operation does: power actions, extension deletes, NSG rule changes, run
    commands... ``value`` names it in messages (``powerOff``, ``delete``)."""

    @property
    def value(self) -> str: ...


# Compute's actions, as the twin's compute provider starts them.
ComputeAction = PowerAction | ExtensionDelete


class OperationConflict(Exception):
    """A VM already has an operation running; ARM refuses a second one (409)."""

    def __init__(self, running: Operation) -> None:
        super().__init__(f"{running.action.value} is in progress on {running.vm}")
        self.running = running


@dataclass(frozen=True)
class Operation:
    """One long-running operation, as its ARM operation resource reports it."""

    id: str
    vm: str  # the resource the operation works on: a VM's name, or another resource's key
    action: Action
    started: datetime
    namespace: str = "Microsoft.Compute"  # the resource provider whose URL polls it
    ended: datetime | None = None
    error: str | None = None
    error_code: str = DEFAULT_ERROR_CODE
    result: object | None = None  # what the work returned (a run command's output)

    @property
    def status(self) -> str:
        if self.ended is None:
            return "InProgress"
        return "Failed" if self.error is not None else "Succeeded"


class OperationStore:
    """The operations of this twin: at most one running per VM, a bounded history."""

    def __init__(self, keep: int = 256) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._ops: OrderedDict[str, Operation] = OrderedDict()

    def begin(self, vm: str, action: Action, namespace: str = "Microsoft.Compute") -> Operation:
        """Record a new operation; raises :class:`OperationConflict` if ``vm`` is busy."""
        with self._lock:
            running = self._running(vm)
            if running is not None:
                raise OperationConflict(running)
            op = Operation(
                id=str(uuid.uuid4()), vm=vm, action=action, started=_now(), namespace=namespace
            )
            self._ops[op.id] = op
            while len(self._ops) > self._keep:
                oldest = next(iter(self._ops.values()))
                if oldest.ended is None:
                    break  # never forget a running operation
                self._ops.popitem(last=False)
            return op

    def finish(
        self,
        op_id: str,
        error: str | None = None,
        code: str = DEFAULT_ERROR_CODE,
        result: object | None = None,
    ) -> None:
        with self._lock:
            op = self._ops.get(op_id)
            if op is not None:
                self._ops[op_id] = replace(
                    op, ended=_now(), error=error, error_code=code, result=result
                )

    def get(self, op_id: str) -> Operation | None:
        with self._lock:
            return self._ops.get(op_id)

    def running(self, vm: str) -> Operation | None:
        with self._lock:
            return self._running(vm)

    def _running(self, vm: str) -> Operation | None:
        return next((o for o in self._ops.values() if o.vm == vm and o.ended is None), None)


def run_in_background(
    operations: OperationStore, op: Operation, work: Callable[[], object | None]
) -> None:
    """Run ``work`` for ``op`` on a background thread; ``operations`` records its end."""
    threading.Thread(
        target=_run, args=(operations, op, work), name=f"arm-{op.id}", daemon=True
    ).start()


def _run(operations: OperationStore, op: Operation, work: Callable[[], object | None]) -> None:
    """Carry out an operation and record how it ended (and what it returned), whatever
    happens."""
    error: str | None = None
    code = DEFAULT_ERROR_CODE
    result: object | None = None
    try:
        result = work()
    except OperationError as exc:
        error, code = str(exc), exc.code
    except PowerError as exc:
        error = str(exc)
    except Exception as exc:  # the operation must end, whatever went wrong
        _log.exception("operation %s on %s failed", op.action.value, op.vm)
        error = f"Unexpected failure: {exc}"
    operations.finish(op.id, error, code, result)
    _log.info("operation %s (%s %s) ended: %s", op.id, op.action.value, op.vm, error or "ok")


def _now() -> datetime:
    return datetime.now(UTC)
