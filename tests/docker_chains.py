"""Docker's own iptables rules, saved before a second dockerd starts and put back after.

Why (measured, see tests/engine2.py): every dockerd 20.10 with ``--iptables`` removes
and recreates the chains its bridge driver owns when it starts — ``DOCKER`` in filter
and nat, ``DOCKER-ISOLATION-STAGE-1`` and ``-STAGE-2`` in filter, with the nat chain's
jumps from ``PREROUTING`` and ``OUTPUT`` — and then fills them only for its *own*
networks. On one kernel, a second engine's start therefore deletes the first engine's
isolation rules (an internal lab network's ``! -d <subnet> -i <bridge> -j DROP`` pair)
and its port forwards. Other chains (``FORWARD``, ``DOCKER-USER``, snaplab's lab
chains, ``INPUT``) are left alone.

:func:`restore` puts back what the first engine had in exactly those chains, in its
old order relative to the rules there now, and only rules that name no interface or
bridges that still exist or belong to the first engine's networks (a network removed
meanwhile keeps its rules removed).
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import docker

SYS_CLASS_NET = Path("/sys/class/net")

# (table, chain) -> the jump target a rule there must have to be restored (None: any).
OWNED: dict[tuple[str, str], str | None] = {
    ("filter", "DOCKER"): None,
    ("filter", "DOCKER-ISOLATION-STAGE-1"): None,
    ("filter", "DOCKER-ISOLATION-STAGE-2"): None,
    ("nat", "DOCKER"): None,
    ("nat", "PREROUTING"): "DOCKER",
    ("nat", "OUTPUT"): "DOCKER",
}

Rules = dict[tuple[str, str], list[tuple[str, ...]]]


@dataclass(frozen=True)
class Restored:
    """One rule put back: where, and its ``iptables -S`` arguments."""

    table: str
    chain: str
    rule: tuple[str, ...]

    def __str__(self) -> str:
        return f"-t {self.table} -A {self.chain} {shlex.join(self.rule)}"


def snapshot(tables: tuple[str, ...] = ("filter", "nat")) -> Rules:
    """Every rule of ``tables``, per chain, in order (``iptables-save``'s view)."""
    rules: Rules = {}
    for table in tables:
        text = subprocess.run(
            ["iptables-save", "-t", table], capture_output=True, text=True, check=True
        ).stdout
        for line in text.splitlines():
            if line.startswith(":"):
                rules.setdefault((table, line[1:].split()[0]), [])
            elif line.startswith("-A "):
                tokens = shlex.split(line)
                rules.setdefault((table, tokens[1]), []).append(tuple(tokens[2:]))
    return rules


def missing(before: Rules, after: Rules) -> list[Restored]:
    """Rules of the owned chains that ``before`` had and ``after`` lacks."""
    return [
        Restored(table, chain, rule)
        for (table, chain), rules in before.items()
        if (table, chain) in OWNED
        for rule in rules
        if rule not in after.get((table, chain), [])
    ]


def interfaces() -> set[str]:
    """The host's network interfaces now (every engine's bridges among them)."""
    return {path.name for path in SYS_CLASS_NET.iterdir()}


def bridges(client: docker.DockerClient) -> set[str]:
    """The Linux bridges of an engine's bridge networks (its rules name them)."""
    names: set[str] = set()
    for network in client.networks.list(filters={"driver": "bridge"}):
        options = network.attrs.get("Options") or {}
        default = "docker0" if network.name == "bridge" else f"br-{str(network.id)[:12]}"
        names.add(str(options.get("com.docker.network.bridge.name") or default))
    return names


def restore(before: Rules, interfaces: Collection[str]) -> list[Restored]:
    """Put back the owned chains' rules of ``before`` that are gone now and name only
    ``interfaces`` (the first engine's bridges, see :func:`bridges`); return them."""
    now = snapshot()
    restored: list[Restored] = []
    for (table, chain), wanted_target in OWNED.items():
        old = before.get((table, chain))
        if old is None:
            continue
        if (table, chain) not in now:
            _iptables(table, "-N", chain)
        current = list(now.get((table, chain), []))
        position = 0  # rules of ``current`` that stay above the next one put back
        for rule in old:
            if rule in current:
                position = current.index(rule) + 1
                continue
            if not _wanted(rule, wanted_target, interfaces):
                continue
            _iptables(table, "-I", chain, str(position + 1), *rule)
            current.insert(position, rule)
            position += 1
            restored.append(Restored(table, chain, rule))
    return restored


def _wanted(rule: tuple[str, ...], target: str | None, interfaces: Collection[str]) -> bool:
    if target is not None and _value(rule, "-j") != target:
        return False
    named = (_value(rule, "-i"), _value(rule, "-o"))
    return all(name in interfaces for name in named if name is not None)


def _value(rule: tuple[str, ...], option: str) -> str | None:
    if option not in rule:
        return None
    index = rule.index(option) + 1
    return rule[index] if index < len(rule) else None


def _iptables(table: str, *args: str) -> None:
    subprocess.run(["iptables", "-w", "-t", table, *args], capture_output=True, check=True)
