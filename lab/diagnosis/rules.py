"""Which failing checks name which cause: the rule table, held as data.

Each :class:`Rule` pairs a cause id with a condition over check results and the checks
whose details are its evidence. A condition is a small tree — :class:`Failed`,
:class:`Passed`, :class:`AllOf`, :class:`AnyOf`, :class:`Not` — evaluated by one
function, so the whole table can be read (and tested) at a glance.

``Failed(x)`` holds only when check ``x`` was *observed* and failed; ``Passed(x)`` only
when it was observed and passed. A check that was not run (the guest is off) or could
not observe is neither, so exclusions are written ``Not(Failed(x))``: unknown never
blocks a cause, and never creates one.

A state in motion never makes a check fail, so it never names a cause: a handler the agent
is still installing or enabling, an agent starting up, a ``transitioning`` status within the
sub-task timeout (the checks watch or judge them against Azure's windows, scaled:
:mod:`checks.in_motion`). ``broken-extension`` therefore needs a handler that has settled,
or one stuck past the agent's own install or enable limit.

Precision between causes that share symptoms comes from the conditions, not from order:

- ``stale-agent`` vs ``agent-stopped``: an agent below 2.2.53.1 is ``stale-agent``
  whether or not it runs (the fix is the upgrade, which also restarts it);
  ``agent-stopped`` needs a supported version.
- ``agent-stopped`` is not named under memory pressure: an agent killed by the OOM
  killer is that pressure's symptom.
- ``cpu-saturation`` is not named under memory pressure (reclaim burns the CPU quota)
  or a hung pre/post script (a spinning script is the hang's own symptom).
- ``broken-extension`` vs ``extension-update-failed``: the latter is a version the goal
  state asks for that the agent could not fetch or unpack; the former is the handler
  in use being damaged on disk while its version is the one asked for.
- ``schedule-storm`` is the platform busy with other VMs' snapshots: named only when
  the VM's agent is Ready and no check finds a cause in the VM itself.
- ``guest-shutdown`` is the platform showing a VM ``running`` whose OS is down *and*
  whose agent has gone ``Not Ready``: the platform's view of the VM is stale (Azure shows
  an OS that halted as ``PowerState/stopped``, which is no cause at all). An OS that is
  down while the agent is still ``Ready`` is a reboot under way, not a cause.
- ``blocked-egress`` vs ``blocked-egress-proxy``: both are storage unreachable on the
  extension's path with an NSG rule denying VM -> storage; ``-proxy`` is that block
  on a VM that has a working proxy the agent is not configured to use, so the fix
  is HttpProxy in waagent.conf rather than the NSG.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from checks.result import CheckResult


@dataclass(frozen=True)
class Failed:
    check: str


@dataclass(frozen=True)
class Passed:
    check: str


@dataclass(frozen=True)
class Not:
    condition: Condition


@dataclass(frozen=True)
class AllOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    conditions: tuple[Condition, ...]


Condition = Failed | Passed | Not | AllOf | AnyOf


def all_of(*conditions: Condition) -> AllOf:
    return AllOf(conditions)


def any_of(*conditions: Condition) -> AnyOf:
    return AnyOf(conditions)


def holds(condition: Condition, results: Mapping[str, CheckResult]) -> bool:
    """Evaluate a condition over results keyed by check id."""
    match condition:
        case Failed(check):
            result = results.get(check)
            return result is not None and result.failed
        case Passed(check):
            result = results.get(check)
            return result is not None and result.observed and result.passed
        case Not(inner):
            return not holds(inner, results)
        case AllOf(conditions):
            return all(holds(c, results) for c in conditions)
        case AnyOf(conditions):
            return any(holds(c, results) for c in conditions)
    raise TypeError(f"not a condition: {condition!r}")


def evaluate(condition: Condition, results: Mapping[str, CheckResult]) -> bool | None:
    """Three-valued :func:`holds`: None when the answer depends on a check that was not
    run or could not observe (a bundle cannot run them all). Kleene's logic: a known
    False decides an AllOf, a known True an AnyOf, whatever the unknown parts are."""
    match condition:
        case Failed(check) | Passed(check):
            result = results.get(check)
            if result is None or not result.observed:
                return None
            return result.passed is isinstance(condition, Passed)
        case Not(inner):
            value = evaluate(inner, results)
            return None if value is None else not value
        case AllOf(conditions):
            values = [evaluate(c, results) for c in conditions]
            return False if False in values else (None if None in values else True)
        case AnyOf(conditions):
            values = [evaluate(c, results) for c in conditions]
            return True if True in values else (None if None in values else False)
    raise TypeError(f"not a condition: {condition!r}")


def checks_in(condition: Condition) -> tuple[str, ...]:
    """Every check id a condition reads, in order, once."""
    match condition:
        case Failed(check) | Passed(check):
            return (check,)
        case Not(inner):
            return checks_in(inner)
        case AllOf(conditions) | AnyOf(conditions):
            return tuple(dict.fromkeys(c for part in conditions for c in checks_in(part)))
    raise TypeError(f"not a condition: {condition!r}")


@dataclass(frozen=True)
class Rule:
    cause: str
    when: Condition
    evidence: tuple[str, ...]  # check ids; the failing ones are quoted


STORAGE_BLOCKED = all_of(Failed("guest.storage_reachable"), Failed("platform.nsg_egress"))
EGRESS_EVIDENCE = (
    "guest.storage_reachable",
    "platform.nsg_egress",
    "guest.agent_proxy",
    "guest.extension_status",
    "platform.backup_jobs",
)

# Checks that find something wrong with the VM itself. The schedule-storm rule is the
# platform being busy with other VMs: it is named only for a VM whose agent is Ready and
# in which none of these finds a cause of its own (a timeout among other VMs' completed
# jobs is otherwise just that VM's own failure).
GUEST_CAUSE_CHECKS: tuple[str, ...] = (
    "guest.agent_version",
    "guest.agent_running",
    "guest.waagent_conf",
    "guest.dhcp",
    "guest.storage_reachable",
    "guest.handler_files",
    "guest.extension_package",
    "guest.cpu_load",
    "guest.memory",
    "guest.prepost_scripts",
    "platform.power_state",
    "platform.nsg_egress",
)

RULES: tuple[Rule, ...] = (
    Rule(
        "blocked-egress",
        all_of(STORAGE_BLOCKED, Not(Failed("guest.agent_proxy"))),
        EGRESS_EVIDENCE,
    ),
    Rule(
        "blocked-egress-proxy",
        all_of(STORAGE_BLOCKED, Failed("guest.agent_proxy")),
        EGRESS_EVIDENCE,
    ),
    Rule(
        "stale-agent",
        Failed("guest.agent_version"),
        (
            "guest.agent_version",
            "guest.agent_running",
            "guest.agent_restart_policy",
            "platform.vm_agent",
            "platform.backup_jobs",
        ),
    ),
    Rule(
        "agent-stopped",
        all_of(
            Passed("guest.agent_version"),
            Failed("guest.agent_running"),
            Not(Failed("guest.memory")),
        ),
        ("guest.agent_running", "platform.vm_agent", "platform.backup_jobs"),
    ),
    Rule(
        "extensions-disabled",
        Failed("guest.waagent_conf"),
        ("guest.waagent_conf", "platform.extensions", "platform.backup_jobs"),
    ),
    Rule(
        "broken-extension",
        all_of(Failed("guest.handler_files"), Not(Failed("guest.extension_package"))),
        (
            "guest.handler_files",
            "guest.extension_status",
            "platform.extensions",
            "platform.backup_jobs",
        ),
    ),
    Rule(
        "extension-update-failed",
        Failed("guest.extension_package"),
        ("guest.extension_package", "platform.extensions", "platform.backup_jobs"),
    ),
    Rule(
        "cpu-saturation",
        all_of(
            Failed("guest.cpu_load"),
            Not(Failed("guest.memory")),
            Not(Failed("guest.prepost_scripts")),
        ),
        ("guest.cpu_load", "guest.extension_status", "platform.backup_jobs"),
    ),
    Rule(
        "memory-pressure",
        Failed("guest.memory"),
        ("guest.memory", "guest.cpu_load", "guest.extension_status", "platform.backup_jobs"),
    ),
    Rule(
        "dhcp-disabled",
        Failed("guest.dhcp"),
        ("guest.dhcp", "guest.wireserver", "platform.vm_agent", "platform.backup_jobs"),
    ),
    Rule(
        "guest-shutdown",
        all_of(Failed("platform.power_state"), Failed("platform.vm_agent")),
        ("platform.power_state", "platform.vm_agent", "platform.backup_jobs"),
    ),
    Rule(
        "schedule-storm",
        all_of(
            Failed("platform.concurrent_backups"),
            Passed("platform.vm_agent"),
            *(Not(Failed(check)) for check in GUEST_CAUSE_CHECKS),
        ),
        ("platform.concurrent_backups", "platform.vm_agent", "platform.backup_jobs"),
    ),
    Rule(
        "prescript-hang",
        Failed("guest.prepost_scripts"),
        ("guest.prepost_scripts", "guest.extension_status", "platform.backup_jobs"),
    ),
)

CAUSE_IDS: tuple[str, ...] = tuple(rule.cause for rule in RULES)
