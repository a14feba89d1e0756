"""``snaplab nsg``: what it prints, and bad input as one ``Error:`` line with exit code 2 —
with the lab lookup and the firewall replaced, so no Docker engine or iptables is used."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from lab import cli_nsg
from lab.cli import SnaplabGroup
from lab.errors import LabNotFound
from lab.provision import nsg
from tests.unit.test_nsg_fakes import FakeFirewall, roster

ROSTER = roster("t1")


@click.group(cls=SnaplabGroup)
def root() -> None:
    """Stands in for ``snaplab`` (which registers the same group)."""


root.add_command(cli_nsg.nsg)


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> FakeFirewall:
    firewall = FakeFirewall()

    def resolve(_client: object, name: str | None) -> str:
        if name not in (None, "t1"):
            raise LabNotFound(f"no lab named {name!r} (running: t1)")
        return "t1"

    monkeypatch.setattr(cli_nsg.engine, "connect", lambda: object())
    monkeypatch.setattr(cli_nsg.labs, "resolve_lab", resolve)
    monkeypatch.setattr(cli_nsg.labs, "roster_of", lambda _client, _lab: ROSTER)
    monkeypatch.setattr(nsg, "Iptables", lambda: firewall)
    return firewall


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(root, ["nsg", *args], obj={})
    return result.exit_code, result.output


def test_an_empty_nsg_says_outbound_is_allowed(wall: FakeFirewall) -> None:
    assert run("list", "vm1") == (0, "vm1: no NSG rules (its outbound traffic is allowed)\n")


def test_deny_allow_list_and_remove(wall: FakeFirewall) -> None:
    code, out = run("deny-storage", "vm1")
    assert code == 0
    assert out == (
        "vm1: added NSG rule DenyStorageOutbound (priority 200, Deny Tcp to Storage port 10000)\n"
    )
    assert run("allow-storage", "vm1", "--lab", "t1")[0] == 0

    code, out = run("list", "vm1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["Priority", "Name", "Access", "Protocol", "Destination"]
    assert lines[1].split() == [
        "100", "AllowStorageOutbound", "Allow", "Tcp", "Storage:10000", "(10.213.9.3)"
    ]  # fmt: skip
    assert lines[2].split()[:3] == ["200", "DenyStorageOutbound", "Deny"]

    code, out = run("remove", "vm1", "DenyStorageOutbound")
    assert code == 0 and out.startswith("vm1: removed NSG rule DenyStorageOutbound")
    assert [r.name for r in nsg.list_rules(ROSTER, "vm1", wall)] == ["AllowStorageOutbound"]


def test_list_json_is_what_a_runbook_filters(wall: FakeFirewall) -> None:
    run("deny-storage", "vm1", "--name", "Block-Storage", "--priority", "300")
    code, out = run("list", "vm1", "--json")
    assert code == 0
    assert json.loads(out) == {
        "lab": "t1",
        "vm": "vm1",
        "rules": [
            {
                "name": "Block-Storage",
                "priority": 300,
                "access": "Deny",
                "protocol": "Tcp",
                "destination": "Storage",
                "destination_port": "10000",
                "direction": "Outbound",
            }
        ],
    }


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["list", "vm9"], "VM 'vm9': lab 't1' has no such VM"),
        (["list", "vm1", "--lab", "nolab"], "no lab named 'nolab'"),
        (["remove", "vm1", "Nope"], "vm1's NSG has no rule named 'Nope'"),
        (["deny-storage", "vm1", "--name", "bad name"], "rule name 'bad name'"),
        (["deny-storage", "vm1", "--priority", "50"], "50 is not in the range 100<=x<=4096"),
        (["remove", "vm1"], "Missing argument 'NAME'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    wall: FakeFirewall, args: list[str], fragment: str
) -> None:
    code, out = run(*args)
    assert code == 2, out
    assert fragment in out
    assert "Traceback" not in out
    assert [line for line in out.splitlines() if line.startswith("Error:")] != []


def test_a_taken_name_or_priority_is_bad_input(wall: FakeFirewall) -> None:
    assert run("deny-storage", "vm1")[0] == 0
    code, out = run("deny-storage", "vm1")
    assert (code, out) == (2, "Error: vm1's NSG already has a rule named 'DenyStorageOutbound'\n")
    code, out = run("allow-storage", "vm1", "--priority", "200")
    assert code == 2 and "priority 200 is already used" in out
