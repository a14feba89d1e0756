"""Variants: one scenario run another way, each run item in its own lab.

A run is a list of :class:`RunItem`, a scenario and a :class:`Variant`:

- ``catalog``: the scenario as written (its lifecycle, at the caller's time scale);
- ``without-fix``: the runbook with the steps marked ``fix`` left out, after which a real
  backup must still fail: proof that the runbook needs its fix;
- ``scale=N``: the lifecycle with the lab's Azure clock at N instead of the caller's, and
  the same expected error and diagnosis: proof that the outcome is Azure's, not the
  time scale's;
- ``agent=VERSION``: every VM on that agent version, expecting what the scenario's
  ``agent_variants`` entry for it says;
- ``agents``: one ``agent=`` item per ``agent_variants`` entry;
- ``guest=VARIANT``: every VM on that guest variant (:mod:`lab.provision.guest_variants`:
  another distribution's network stack or agent unit name), expecting the scenario's own
  error and diagnosis: proof that checks and faults hold on that guest;
- ``drill``: a one-trainee drill of the scenario, its runbook applied over the trainee's
  own SSH and scoped credentials, ``drill check`` not fixed before and fixed after
  (:mod:`lab.runner.drill_phases`);
- ``round-trip``: the broken VM's log bundle collected, diagnosed and imported as a case
  (with the customer's other evidence: NSG rules, policy, load, power), then a lab built
  from that case alone must fail with the same job error (:mod:`lab.runner.round_trip`).

Text comes from the command line (``ID@VARIANT``, ``--variant V``); anything wrong is one
:class:`~lab.errors.BadInput` line naming what was typed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from lab.errors import BadInput
from lab.platform.timescale import time_scale
from lab.provision.guest_variants import guest_variant
from lab.provision.images import AGENT_FLAVORS
from lab.runner.drill_phases import DRILL_PHASES
from lab.runner.phases import PHASES, Phase
from lab.runner.round_trip import ROUND_TRIP_PHASES
from lab.runner.without_fix import WITHOUT_FIX_PHASES
from lab.scenario import Scenario, load_scenarios, scenario_ids

VariantKind = Literal[
    "catalog", "without-fix", "scale", "agent", "agents", "guest", "drill", "round-trip"
]
FORMS = "catalog, without-fix, scale=N, agent=VERSION, agents, guest=VARIANT, drill or round-trip"
# Each variant's lifecycle (``agents`` only ever stands for ``agent=`` items).
LIFECYCLES: dict[VariantKind, tuple[Phase, ...]] = {
    "catalog": PHASES,
    "without-fix": WITHOUT_FIX_PHASES,
    "scale": PHASES,
    "agent": PHASES,
    "agents": PHASES,
    "guest": PHASES,
    "drill": DRILL_PHASES,
    "round-trip": ROUND_TRIP_PHASES,
}


@dataclass(frozen=True)
class Variant:
    """How a run item differs from its scenario as written."""

    kind: VariantKind
    scale: float | None = None
    agent: str | None = None
    guest: str | None = None

    @property
    def name(self) -> str:
        """The text that names it again: ``catalog``, ``scale=60``, ``agent=2.12.0.2``,
        ``guest=netplan``."""
        if self.kind == "scale":
            return f"scale={self.scale:g}"
        if self.kind == "agent":
            return f"agent={self.agent}"
        if self.kind == "guest":
            return f"guest={self.guest}"
        return self.kind


CATALOG = Variant("catalog")
PLAIN = {
    v.kind: v
    for v in (
        CATALOG,
        Variant("without-fix"),
        Variant("agents"),
        Variant("drill"),
        Variant("round-trip"),
    )
}


def parse_variant(text: str, where: str) -> Variant:
    """``catalog``, ``without-fix``, ``scale=N``, ``agent=VERSION`` or ``agents``.

    ``where`` is how the user wrote it (``--variant 'x'``), for the error line.
    """
    key, sep, value = text.strip().partition("=")
    if not sep and key in PLAIN:
        return PLAIN[key]
    if sep and key == "scale":
        try:
            scale = float(value)
        except ValueError:
            scale = math.nan
        if not math.isfinite(scale) or scale <= 0:
            raise BadInput(f"{where}: the time scale must be a positive number, got {value!r}")
        return Variant("scale", scale=scale)
    if sep and key == "agent":
        if value not in AGENT_FLAVORS:
            raise BadInput(
                f"{where}: unknown agent version {value!r} (known: {', '.join(AGENT_FLAVORS)})"
            )
        return Variant("agent", agent=value)
    if sep and key == "guest":
        return Variant("guest", guest=guest_variant(value, where).name)
    raise BadInput(f"{where}: unknown variant {text!r} (expected {FORMS})")


@dataclass(frozen=True)
class RunItem:
    """One lab's worth of work: a scenario, as this variant runs it, at a time scale."""

    scenario: Scenario
    variant: Variant
    time_scale: float

    @property
    def id(self) -> str:
        """``<scenario>`` for the catalog variant, else ``<scenario>@<variant>``."""
        if self.variant.kind == "catalog":
            return self.scenario.id
        return f"{self.scenario.id}@{self.variant.name}"

    @property
    def phases(self) -> tuple[Phase, ...]:
        return LIFECYCLES[self.variant.kind]


def expand(
    scenario: Scenario, variant: Variant, where: str, required: bool = True
) -> list[RunItem]:
    """The items one (scenario, variant) pair stands for.

    A scenario without the ``agent_variants`` entry an ``agent=``/``agents`` variant needs
    gives no item when not ``required`` (a variant over the implied whole catalog), and
    is an error when it is (a scenario the user named).
    """
    entries = scenario.spec.agent_variants
    if variant.kind in ("agent", "agents"):
        agents = [e.agent for e in entries if variant.kind == "agents" or e.agent == variant.agent]
        if not agents and required:
            wanted = f" for agent {variant.agent}" if variant.agent else ""
            raise BadInput(f"{where}: {_yaml(scenario)} has no agent_variants entry{wanted}")
        return [_agent_item(scenario, agent) for agent in agents]
    if variant.kind == "guest":
        vms = [vm.model_copy(update={"guest": variant.guest}) for vm in scenario.spec.vms]
        changed = scenario.spec.model_copy(update={"vms": vms})
        return [RunItem(replace(scenario, spec=changed), variant, time_scale())]
    scale = variant.scale if variant.scale is not None else time_scale()
    return [RunItem(scenario, variant, scale)]


def _agent_item(scenario: Scenario, agent: str) -> RunItem:
    """Every VM on ``agent``, expecting what the scenario's entry for it says."""
    spec = scenario.spec
    entry = next(e for e in spec.agent_variants if e.agent == agent)
    vms = [vm.model_copy(update={"agent": agent}) for vm in spec.vms]
    changed = spec.model_copy(update={"vms": vms, "expect": entry.expect})
    return RunItem(replace(scenario, spec=changed), Variant("agent", agent=agent), time_scale())


def _yaml(scenario: Scenario) -> str:
    return f"scenarios/{scenario.id}/scenario.yaml"


def plan_run(arguments: Sequence[str], variant_options: Sequence[str]) -> list[RunItem]:
    """The run ``snaplab run [ID[@VARIANT]...] [--variant V]...`` asks for, in order.

    ``--variant`` applies to every listed ``ID`` (to the whole catalog when no plain ID is
    listed); without ``--variant`` that is the ``catalog`` variant. ``ID@VARIANT`` adds
    single items; given alone, they are the whole run. An item asked twice runs once.
    Listed scenarios run variant by variant (every scenario's first variant, then the
    next), then the single items in the order given.
    """
    listed: list[str] = []
    singles: list[tuple[str, Variant, str]] = []
    for argument in arguments:
        scenario_id, sep, text = argument.partition("@")
        if not sep:
            listed.append(argument)
            continue
        where = repr(argument)
        if not scenario_id:
            raise BadInput(f"{where}: expected ID@VARIANT (a scenario id before the '@')")
        singles.append((scenario_id, parse_variant(text, where), where))
    variants = [(parse_variant(v, f"--variant {v!r}"), f"--variant {v!r}") for v in variant_options]
    named = bool(listed)
    if not listed and (variants or not singles):
        listed = scenario_ids()
    wanted = list(dict.fromkeys([*listed, *(s for s, _, _ in singles)]))
    scenarios = {s.id: s for s in load_scenarios(wanted)}
    items: list[RunItem] = []
    # Variant by variant: one scenario's items sit far apart in a parallel run, so its
    # load (four CPU-saturated guests at once) never piles up on the machine.
    for variant, where in variants or [(CATALOG, "")]:
        for scenario_id in dict.fromkeys(listed):
            items += expand(scenarios[scenario_id], variant, where, required=named)
    for scenario_id, variant, where in singles:
        items += expand(scenarios[scenario_id], variant, where)
    unique: dict[str, RunItem] = {}
    for item in items:
        unique.setdefault(item.id, item)
    if not unique:
        asked = ", ".join(where for _, where in variants)
        raise BadInput(f"{asked}: no scenario of the catalog has agent_variants, nothing to run")
    return list(unique.values())
