"""Which systemd unit is the Azure Linux agent's, found by looking at the guest.

Distributions package the same agent under two unit names: Debian and Ubuntu ship
``walinuxagent.service`` (WALinuxAgent ``init/ubuntu/walinuxagent.service``, and
``osutil/debian.py`` / ``osutil/ubuntu.py`` name the service ``walinuxagent``), while
RHEL, SUSE, Mariner and most others ship ``waagent.service`` (``init/redhat``,
``init/sles``, ...). A check that asks systemd about one fixed name calls a healthy
RHEL VM's agent "no such unit", so the unit is found by observation instead:

1. ``systemctl show`` both known names in one command; a name systemd does not know
   (``LoadState=not-found``) is not the agent's. Of the ones it knows, an active unit
   wins over an enabled one, and an enabled one over one that is merely installed
   (an image may keep the other distribution's unit file around, disabled).
2. When neither name exists, any unit file whose ``ExecStart=`` runs ``waagent``
   (a hand-made or renamed unit) is the agent's.

Nothing here knows how the lab builds its guests: it reads what systemd reports.
"""

from __future__ import annotations

from dataclasses import dataclass

from checks.host import GuestHost, quote

KNOWN_UNITS = ("walinuxagent.service", "waagent.service")
UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
)
# What ranks a unit as the agent's (lower is better) besides existing at all.
_RUNNING_STATES = ("active", "activating", "deactivating", "reloading")


@dataclass(frozen=True)
class AgentUnit:
    """The agent's unit and the properties systemd showed for it."""

    id: str
    properties: dict[str, str]

    @property
    def name(self) -> str:
        """The name as people type it: ``walinuxagent``, ``waagent``."""
        return self.id.removesuffix(".service")


def parse_show(text: str, units: tuple[str, ...]) -> list[tuple[str, dict[str, str]]]:
    """``systemctl show`` of several units: one block per unit, blank-line separated, in
    the order asked. A block's ``Id=`` names it; a block without one takes its place's."""
    blocks = [block for block in text.split("\n\n") if block.strip()]
    found = []
    for index, block in enumerate(blocks):
        props = properties(block)
        fallback = units[index] if index < len(units) else f"unit-{index}"
        found.append((props.get("Id") or fallback, props))
    return found


def properties(text: str) -> dict[str, str]:
    """``key=value`` lines (systemctl show, os-release style) as a dict."""
    props = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props


def choose(shown: list[tuple[str, dict[str, str]]]) -> AgentUnit | None:
    """The agent's unit among those systemd showed, or None when none exists."""
    present = [(unit, p) for unit, p in shown if p.get("LoadState") not in (None, "", "not-found")]
    if not present:
        return None

    def rank(entry: tuple[str, dict[str, str]]) -> int:
        props = entry[1]
        if props.get("ActiveState") in _RUNNING_STATES:
            return 0
        if props.get("LoadState") == "loaded" and props.get("UnitFileState") == "enabled":
            return 1
        return 2 if props.get("LoadState") == "loaded" else 3

    unit, props = min(present, key=rank)
    return AgentUnit(unit, props)


def agent_unit(host: GuestHost, props: str, then: str = "") -> AgentUnit | None:
    """The agent's unit with the systemd properties ``props`` (comma-separated; the
    ones :func:`choose` ranks by are always added), or None when the guest has none.

    ``then`` is a command run in the same round trip whose ``key=value`` output is
    added to the unit's properties (the guest's uptime, say)."""
    wanted = f"{props},Id,LoadState,ActiveState,UnitFileState"
    after = f"; echo; {then}" if then else ""
    found = _chosen(host.run(f"systemctl show -p {wanted} {' '.join(KNOWN_UNITS)}{after}").stdout)
    if found is not None:
        return found
    other = unit_running_waagent(host)
    if other is None:
        return None
    return _chosen(host.run(f"systemctl show -p {wanted} {quote(other)}{after}").stdout, other)


def _chosen(text: str, *units: str) -> AgentUnit | None:
    asked = units or KNOWN_UNITS
    shown = parse_show(text, asked)
    found = choose(shown[: len(asked)])
    if found is None:
        return None
    extra = {k: v for _, props in shown[len(asked) :] for k, v in props.items()}
    return AgentUnit(found.id, {**extra, **found.properties})


def unit_running_waagent(host: GuestHost) -> str | None:
    """A unit file (other than the known names) whose ExecStart runs waagent."""
    globs = " ".join(f"{folder}/*.service" for folder in UNIT_DIRS)
    out = host.run(f"grep -l -E '^ExecStart=.*waagent' {globs} 2>/dev/null")
    for path in out.stdout.splitlines():
        unit = path.rsplit("/", 1)[-1].strip()
        if unit and unit not in KNOWN_UNITS:
            return unit
    return None


def describe_missing() -> str:
    return f"no agent unit ({' or '.join(KNOWN_UNITS)}, or a unit whose ExecStart runs waagent)"
