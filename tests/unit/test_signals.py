"""lab.signals: SIGTERM and SIGHUP take Ctrl-C's path, teardown finishes, time is bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import click
import pytest
from click.testing import CliRunner

from lab import signals
from lab.cli import SnaplabGroup


@pytest.fixture
def notes() -> Iterator[list[str]]:
    seen: list[str] = []
    signals.install(grace=0, notify=seen.append)
    try:
        yield seen
    finally:
        signals.uninstall()


def _send(signum: int) -> None:
    """Deliver a signal to the main thread and give its handler a chance to run."""
    signal.pthread_kill(threading.main_thread().ident or 0, signum)
    for _ in range(100):  # the handler runs between bytecodes of the main thread
        time.sleep(0.001)


@pytest.mark.parametrize(
    ("signum", "code", "name"),
    [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "SIGHUP"), (signal.SIGINT, 130, "")],
)
def test_each_signal_raises_a_keyboard_interrupt_with_its_exit_code(
    notes: list[str], signum: int, code: int, name: str
) -> None:
    with pytest.raises(KeyboardInterrupt) as caught:
        _send(signum)
    assert isinstance(caught.value, signals.Interrupted)
    assert caught.value.signum == signum
    assert signals.exit_code() == code == caught.value.exit_code
    assert signals.received() == signum
    assert signals.describe() == (name or "Ctrl-C")
    # Ctrl-C speaks for itself on a terminal; CI logs should say what a signal did.
    assert bool(notes) == (signum != signal.SIGINT)


def test_exit_code_follows_the_first_signal_not_the_last(notes: list[str]) -> None:
    with pytest.raises(signals.Interrupted):
        _send(signal.SIGHUP)
    with pytest.raises(signals.Interrupted):
        _send(signal.SIGTERM)
    assert signals.exit_code() == 129


def test_without_a_signal_an_interrupt_exits_130() -> None:
    signals.uninstall()
    assert signals.exit_code(KeyboardInterrupt()) == 130
    assert signals.exit_code(signals.Interrupted(signal.SIGTERM)) == 143
    assert signals.describe() == "Ctrl-C"


def test_a_shielded_block_finishes_and_the_signal_follows(notes: list[str]) -> None:
    steps: list[str] = []
    with pytest.raises(signals.Interrupted) as caught, signals.shielded("removing lab x"):
        _send(signal.SIGTERM)
        steps.append("finished")
    assert steps == ["finished"]
    assert caught.value.signum == signal.SIGTERM
    assert any("while removing lab x" in note for note in notes)


def test_a_shield_inside_an_interrupt_handler_lets_the_first_interrupt_leave(
    notes: list[str],
) -> None:
    removed: list[str] = []
    with pytest.raises(signals.Interrupted) as caught:
        try:
            _send(signal.SIGTERM)
        except KeyboardInterrupt:
            with signals.shielded("removing lab x"):
                _send(signal.SIGHUP)  # the second signal must not cut the removal short
                removed.append("x")
            raise
    assert removed == ["x"]
    assert caught.value.signum == signal.SIGTERM


def test_nested_shields_raise_only_when_the_outer_one_ends(notes: list[str]) -> None:
    steps: list[str] = []

    @signals.shielded("removing a lab")
    def remove(name: str) -> None:
        steps.append(name)

    with pytest.raises(signals.Interrupted), signals.shielded("removing the run's labs"):
        remove("a")
        _send(signal.SIGTERM)
        remove("b")
        remove("c")
    assert steps == ["a", "b", "c"]


def test_a_shield_in_another_thread_does_not_shield_the_main_thread(notes: list[str]) -> None:
    inside, release = threading.Event(), threading.Event()

    def worker() -> None:
        with signals.shielded("a worker's teardown"):
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        inside.wait(5)
        with pytest.raises(signals.Interrupted):
            _send(signal.SIGTERM)
    finally:
        release.set()
        thread.join()


def test_the_watchdog_sends_the_second_interrupt_after_the_grace() -> None:
    seen: list[str] = []
    signals.install(grace=0.2, notify=seen.append)
    try:
        began = time.monotonic()
        with pytest.raises(signals.Interrupted):
            _send(signal.SIGTERM)
        with pytest.raises(signals.Interrupted):  # a graceful stop that takes too long
            while time.monotonic() - began < 5:
                time.sleep(0.01)
        assert 0.15 < time.monotonic() - began < 2
        assert any("removing the labs at once" in note for note in seen)
    finally:
        signals.uninstall()


def test_the_watchdog_is_cancelled_when_the_command_ends() -> None:
    signals.install(grace=0.2, notify=lambda _: None)
    try:
        with pytest.raises(signals.Interrupted):
            _send(signal.SIGTERM)
        signals.cancel_watchdog()
        time.sleep(0.4)  # no second interrupt arrives
    finally:
        signals.uninstall()


def test_uninstall_restores_the_previous_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM)
    signals.install(grace=0)
    assert signal.getsignal(signal.SIGTERM) is not before
    signals.uninstall()
    assert signal.getsignal(signal.SIGTERM) is before
    assert signals.received() is None


def test_the_cli_boundary_exits_128_plus_the_signal(notes: list[str]) -> None:
    @click.group(cls=SnaplabGroup)
    def group() -> None:
        pass

    @group.command()
    def wait() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    result = CliRunner().invoke(group, ["wait"], obj={})
    assert result.exit_code == 143
    assert "Error: interrupted (SIGTERM)" in result.output


def test_sigterm_during_provision_removes_the_lab_within_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Provisioning cannot be cut short: the watchdog's second interrupt removes the lab
    under it, and the sweep after it catches what the worker created afterwards."""
    from lab.runner import RunOptions, catalog, run_catalog
    from tests.unit.test_runner_fakes import FakeDrivers, scenario

    monkeypatch.setattr(catalog, "SWEEP_AGAIN_SECONDS", 0.3)

    class SlowProvision(FakeDrivers):
        def up(self, lab: str, vms: Any, time_scale: float) -> Any:
            roster = super().up(lab, vms, time_scale)
            threading.Timer(0.05, signal.pthread_kill, (main, signal.SIGTERM)).start()
            time.sleep(0.5)  # meanwhile the main thread removes the lab
            with self.lock:
                self.live_labs.add(lab)  # ... and this worker creates one more object
            released.wait(10)  # then waits for agents that will never answer
            return roster

    main = threading.main_thread().ident or 0
    released = threading.Event()
    drivers = SlowProvision()
    signals.install(grace=0.2, notify=lambda _: None)
    try:
        began = time.monotonic()
        with pytest.raises(signals.Interrupted):
            run_catalog([scenario("slow")], drivers, RunOptions(lab_prefix="h5u"))
        assert time.monotonic() - began < 2.5
        assert drivers.live_labs == set()
        assert drivers.names().count("down") == 2
        assert signals.exit_code() == 143
    finally:
        released.set()
        signals.uninstall()


def test_sigterm_during_a_backup_wait_stops_gracefully_with_a_journal(notes: list[str]) -> None:
    from lab.runner import RunOptions, run_catalog
    from tests.unit.test_runner_fakes import FakeDrivers, scenario

    main = threading.main_thread().ident or 0

    def backup(cancel: threading.Event) -> None:
        signal.pthread_kill(main, signal.SIGHUP)
        cancel.wait(5)

    drivers = FakeDrivers(on_backup=backup)
    journal = run_catalog([scenario("waits")], drivers, RunOptions(lab_prefix="h5u"))
    assert journal.status == "interrupted"
    assert drivers.live_labs == set()
    assert journal.scenarios[0].phase("teardown").status == "passed"
    assert signals.exit_code() == 129


def test_a_signal_while_workers_start_waits_for_them(notes: list[str]) -> None:
    steps: list[str] = []
    with pytest.raises(signals.Interrupted):
        with signals.held():
            _send(signal.SIGTERM)
            steps.append("every worker started")
        steps.append("never")
    assert steps == ["every worker started"]


def test_workers_started_while_held_can_still_stop_their_processes(notes: list[str]) -> None:
    """A thread inherits the held mask; unblocked() lifts it, so its children get none."""
    seen: dict[str, str] = {}

    def worker() -> None:
        seen["thread"] = repr(signal.pthread_sigmask(signal.SIG_BLOCK, []))
        status = subprocess.run(["grep", "SigBlk", "/proc/self/status"], capture_output=True)
        seen["child"] = status.stdout.decode().split()[-1]

    with signals.held():
        thread = threading.Thread(target=signals.unblocked(worker))
        thread.start()
    thread.join()
    for signum in signals.HANDLED:
        assert signum.name not in seen["thread"]
        assert not int(seen["child"], 16) & (1 << (signum - 1))


def test_a_signal_as_soon_as_a_scenario_starts_still_stops_it_gracefully(
    notes: list[str],
) -> None:
    """The main thread may still be starting workers when the first one already runs."""
    from lab.runner import RunOptions, run_catalog
    from tests.unit.test_runner_fakes import FakeDrivers, scenario

    main = threading.main_thread().ident or 0
    for _ in range(20):
        signals.uninstall()
        signals.install(grace=0, notify=lambda _: None)

        def backup(cancel: threading.Event) -> None:
            signal.pthread_kill(main, signal.SIGTERM)
            cancel.wait(5)

        drivers = FakeDrivers(on_backup=backup)
        options = RunOptions(lab_prefix="h5u", parallel=4)
        journal = run_catalog([scenario(f"s{i}") for i in range(4)], drivers, options)
        assert journal.status == "interrupted"
        assert drivers.live_labs == set()
