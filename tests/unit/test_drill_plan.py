"""Drill planning: names, trainee ids, scenario assignment, the time limit; capacity math."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lab.drill import capacity, plan
from lab.errors import BadInput
from lab.provision.labels import LAB_NAME_PATTERN
from tests.unit.test_runner_fakes import scenario

CATALOG = ["agent-stopped", "blocked-egress", "cpu-saturation", "dhcp-disabled", "stale-agent"]


def test_default_name_leaves_room_for_trainee_labs() -> None:
    name = plan.default_name(datetime(2026, 12, 7, 11, 0, tzinfo=UTC))
    assert name == "drill-1207-1100"
    for seat in plan.seats(name, ["agent-stopped"] * 99):
        assert LAB_NAME_PATTERN.match(seat.lab), seat.lab
    assert plan.seats(name, ["x", "y"])[1].lab == "drill-1207-1100-t02"


def test_lab_names_never_name_the_scenario() -> None:
    for seat in plan.seats("dra-x", CATALOG):
        assert seat.scenario not in seat.lab
        assert seat.lab == f"dra-x-{seat.trainee}"


def test_given_scenarios_cycle_over_trainees() -> None:
    ids = plan.assign(5, CATALOG, ["blocked-egress", "agent-stopped"])
    assert ids == ["blocked-egress", "agent-stopped"] * 2 + ["blocked-egress"]


def test_random_draws_distinct_seeded() -> None:
    first = plan.assign(6, CATALOG, random_count=3, seed=7)
    assert first == plan.assign(6, CATALOG, random_count=3, seed=7)
    assert len(set(first)) == 3
    assert first[:3] == first[3:]  # cycled: neighbours differ
    draws = {tuple(plan.assign(5, CATALOG, random_count=5, seed=s)) for s in range(10)}
    assert len(draws) > 1


def test_default_draw_gives_each_trainee_a_different_one_when_it_can() -> None:
    assert len(set(plan.assign(4, CATALOG, seed=1))) == 4
    assert len(set(plan.assign(8, CATALOG, seed=1))) == len(CATALOG)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trainees": 0}, "--trainees 0"),
        ({"trainees": 100}, "--trainees 100"),
        ({"trainees": 2, "scenarios": ["nope"]}, "--scenario 'nope'"),
        ({"trainees": 2, "random_count": 9}, "--random 9"),
        ({"trainees": 2, "random_count": 0}, "--random 0"),
        ({"trainees": 2, "scenarios": ["agent-stopped"], "random_count": 1}, "not both"),
    ],
)
def test_bad_assignments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(BadInput, match=message.replace("(", r"\(")):
        plan.assign(catalog=CATALOG, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45m", 2700), ("1h30m", 5400), ("90s", 90), ("10", 600), ("2h", 7200), (" 5M ", 300)],
)
def test_durations(text: str, seconds: int) -> None:
    assert plan.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0m", "5x", "m", "1.5h", "-5m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(BadInput, match="--time-limit"):
        plan.parse_duration(text)


# ---------------------------------------------------------------------- capacity


def test_lab_cost_counts_vms_and_memory_faults() -> None:
    one = scenario("one")
    nine = scenario("nine", vms=tuple(f"vm{i}" for i in range(1, 10)))
    assert capacity.lab_mib(one) == capacity.PLATFORM_MIB + capacity.GUEST_MIB
    assert capacity.lab_mib(nine) == capacity.PLATFORM_MIB + 9 * capacity.GUEST_MIB
    monkey = capacity.MEMORY_FAULTS | {"demo-fault"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(capacity, "MEMORY_FAULTS", monkey)
        assert capacity.lab_mib(one) == capacity.PLATFORM_MIB + capacity.GUEST_LIMIT_MIB


def test_six_mixed_trainees_fit_this_machine_class() -> None:
    six = [scenario("a")] * 5 + [scenario("b", vms=tuple(f"vm{i}" for i in range(1, 10)))]
    need = capacity.check_fits(six, free_mib=8 * 1024)
    assert need == capacity.need_mib(six) < 4 * 1024


def test_refusal_is_one_line_with_both_numbers() -> None:
    with pytest.raises(capacity.ClassTooBig) as caught:
        capacity.check_fits([scenario("a")] * 30, free_mib=2048)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("30 trainees need ~")
    assert text.endswith("this machine has 2.0 GiB free")
    assert caught.value.exit_code == 2


def test_available_memory_reads_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  24684544 kB\nMemAvailable:  4194304 kB\n")
    assert capacity.available_mib(meminfo) == 4096


def test_start_workers_are_bounded_by_cores() -> None:
    assert capacity.start_workers(6, cores=2) == 4
    assert capacity.start_workers(1, cores=2) == 1
    assert capacity.start_workers(30, cores=8) == 16
    assert capacity.start_workers(3, cores=1) == 2


def cpu_loaded(name: str) -> Any:
    """A scenario whose fault holds its VM's whole CPU quota (as cpu-saturation's does)."""
    loaded = scenario(name)
    fault = SimpleNamespace(vm="vm1", fault=next(iter(capacity.CPU_FAULTS)))
    return SimpleNamespace(spec=SimpleNamespace(vms=loaded.spec.vms, faults=(fault,)))


def test_a_cpu_loaded_lab_costs_its_guest_quota() -> None:
    assert capacity.lab_cores(scenario("a")) == capacity.IDLE_LAB_CORES
    assert capacity.lab_cores(cpu_loaded("c")) == pytest.approx(capacity.IDLE_LAB_CORES + 1.0)


def test_the_benchmark_class_fits_two_cores() -> None:
    six = [scenario("a")] * 5 + [cpu_loaded("c")]
    assert capacity.check_cores(six, cores=2) == pytest.approx(1.0 + 6 * capacity.IDLE_LAB_CORES)


def test_two_cpu_loaded_labs_on_two_cores_are_refused_in_one_line() -> None:
    with pytest.raises(capacity.ClassTooBig) as caught:
        capacity.check_cores([scenario("a")] * 4 + [cpu_loaded("c")] * 2, cores=2)
    text = str(caught.value)
    assert "\n" not in text and caught.value.exit_code == 2
    assert text.startswith("6 trainees keep ~2.0 cores busy (2 lab(s) whose fault holds")
    assert text.endswith("this machine has 2 core(s)")
