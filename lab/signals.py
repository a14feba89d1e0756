"""SIGTERM and SIGHUP end a command the way Ctrl-C does, so every run tears its labs down.

A CI system cancels a job with SIGTERM (and SIGKILL after a grace period); a closed
terminal sends SIGHUP. Python's default is to die at once on both, which leaves a
lab's containers, network and ``DOCKER-USER`` rules behind. :func:`install` makes the
three signals raise :class:`Interrupted` (a :class:`KeyboardInterrupt`) in the main
thread, so the one interruption path that already exists — ``up`` removing its lab,
the runner stopping its scenarios and tearing their labs down, a second interrupt
removing them at once — serves every signal. The CLI's boundary exits with
:func:`exit_code`, 128 + the signal's number, as a shell reports a process a signal
ended (130 for SIGINT, 129 for SIGHUP, 143 for SIGTERM).

Three guarantees on top of Ctrl-C's:

- **Bounded time.** A CI system waits a few seconds before SIGKILL. If the process is
  still running :data:`GRACE_SECONDS` after the first signal (a scenario still inside a
  phase that cannot be cut short, such as provisioning), the signal is delivered again:
  the second interrupt, which removes the labs at once.
- **No half-removed lab.** Code that removes labs runs :func:`shielded`: a signal that
  arrives meanwhile is noted and the removal finishes. When the shield ends, the noted
  signal is raised, unless an interrupt is already on its way out (then it would only
  cut short what that interrupt's own handler still has to do).
- **No signal between two chairs.** While the runner starts its worker threads the
  signals are held (:func:`held`) and delivered once every worker runs, so a signal
  never finds a worker the stop request cannot reach.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any, ParamSpec, TypeVar

HANDLED: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# A CI system's grace between SIGTERM and SIGKILL is often 10 s (`docker stop`,
# GitHub Actions' 7.5 + 2.5 s): removing a lab takes 1-2 s, so escalate well before.
GRACE_SECONDS = 5.0
DEFAULT_EXIT_CODE = 128 + signal.SIGINT
Notify = Callable[[str], None]
P = ParamSpec("P")
R = TypeVar("R")


class Interrupted(KeyboardInterrupt):
    """A handled signal, raised in the main thread where Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _stderr(message: str) -> None:
    """Write straight to fd 2: a handler may run in the middle of a buffered write."""
    with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
        os.write(2, (message + "\n").encode())


@dataclass
class _State:
    installed: dict[int, Any] = field(default_factory=dict)
    first: int | None = None
    shields: list[str] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)
    watchdog: threading.Timer | None = None
    grace: float = GRACE_SECONDS
    notify: Notify = _stderr


_state = _State()


def install(
    grace: float = GRACE_SECONDS,
    notify: Notify = _stderr,
    signals: Iterable[signal.Signals] = HANDLED,
) -> None:
    """Handle ``signals`` in this process (call once, from the main thread, at start)."""
    uninstall()
    _state.grace, _state.notify = grace, notify
    for signum in signals:
        _state.installed[signum] = signal.signal(signum, _handle)


def uninstall() -> None:
    """Put the previous handlers back and forget every signal seen (tests use this)."""
    global _state
    for signum, previous in _state.installed.items():
        signal.signal(signum, previous)
    cancel_watchdog()
    _state = _State()


def cancel_watchdog() -> None:
    """The command is ending on its own: no second interrupt is needed any more."""
    if _state.watchdog is not None:
        _state.watchdog.cancel()


def received() -> int | None:
    """The first handled signal this process received, if any."""
    return _state.first


def exit_code(error: BaseException | None = None) -> int:
    """What the process exits with after an interrupt: 128 + the first signal's number."""
    if _state.first is not None:
        return 128 + _state.first
    if isinstance(error, Interrupted):
        return error.exit_code
    return DEFAULT_EXIT_CODE


def describe() -> str:
    """``Ctrl-C`` or the signal's name, for messages about why a run stopped."""
    if _state.first in (None, signal.SIGINT):
        return "Ctrl-C"
    return signal_name(_state.first)


def _handle(signum: int, frame: FrameType | None) -> None:
    name = signal_name(signum)
    if _state.first is None:
        _state.first = signum
        _start_watchdog(signum)
        if signum != signal.SIGINT:
            _state.notify(f"snaplab: {name} received: stopping; labs it started are removed")
    if _state.shields:
        _state.deferred.append(signum)
        _state.notify(f"snaplab: {name} received while {_state.shields[-1]}; finishing that first")
        return
    raise Interrupted(signum)


def _start_watchdog(signum: int) -> None:
    if _state.grace <= 0:
        return
    main = threading.main_thread().ident

    def escalate() -> None:
        _state.notify(
            f"snaplab: still running {_state.grace:g} s after {signal_name(signum)}: "
            "removing the labs at once"
        )
        if main is not None:
            signal.pthread_kill(main, signum)

    timer = threading.Timer(_state.grace, escalate)
    timer.daemon = True
    _state.watchdog = timer
    timer.start()


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold the handled signals back for a short block of the main thread (starting
    workers); one that arrives meanwhile is delivered as the block ends. A thread started
    inside inherits the blocked mask: give it a target wrapped in :func:`unblocked`, or the
    processes it starts could not be stopped with these signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def unblocked(target: Callable[[], None]) -> Callable[[], None]:
    """A thread target that first lifts the mask :func:`held` left on its thread."""

    def run() -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)
        target()

    return run


class shielded:
    """Finish the block even if a handled signal arrives; raise it afterwards.

    Only the main thread is shielded (signals are handled there); in other threads this
    does nothing, so a worker's teardown never blocks the main thread's second interrupt.
    Also a decorator: each call gets its own shield.
    """

    def __init__(self, doing: str) -> None:
        self.doing = doing
        self._active = False

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with shielded(self.doing):
                return func(*args, **kwargs)

        return wrapper

    def __enter__(self) -> shielded:
        self._active = threading.current_thread() is threading.main_thread()
        if self._active:
            _state.shields.append(self.doing)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._active:
            return
        self._active = False
        if _state.shields:  # (empty only if uninstall() ran inside the block: tests)
            _state.shields.pop()
        if _state.shields or not _state.deferred:
            return
        signum = _state.deferred[0]
        _state.deferred.clear()
        if exc is not None or isinstance(sys.exc_info()[1], KeyboardInterrupt):
            return  # already leaving (or handling an interrupt): let that go on
        raise Interrupted(signum)
