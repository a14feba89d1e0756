"""Putting back the first engine's rules in Docker's chains, over a fake iptables."""

from __future__ import annotations

import pytest

from tests import docker_chains

STAGE1 = ("filter", "DOCKER-ISOLATION-STAGE-1")
PREROUTING = ("nat", "PREROUTING")
E1_OUT = ("!", "-s", "10.213.0.0/24", "-o", "snl-a", "-j", "DROP")
E1_IN = ("!", "-d", "10.213.0.0/24", "-i", "snl-a", "-j", "DROP")
GONE = ("!", "-d", "10.213.1.0/24", "-i", "snl-gone", "-j", "DROP")
E2_IN = ("!", "-d", "10.214.0.0/24", "-i", "snl-b", "-j", "DROP")
RETURN = ("-j", "RETURN")
JUMP = ("-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER")
OTHER = ("-p", "tcp", "--dport", "8080", "-j", "ACCEPT")


class FakeIptables:
    """Chains as lists, changed by the ``-I``/``-N`` calls restore makes."""

    def __init__(self, rules: docker_chains.Rules) -> None:
        self.rules = {key: list(chain) for key, chain in rules.items()}

    def snapshot(self, tables: tuple[str, ...] = ("filter", "nat")) -> docker_chains.Rules:
        return {key: list(chain) for key, chain in self.rules.items()}

    def iptables(self, table: str, *args: str) -> None:
        if args[0] == "-N":
            self.rules[(table, args[1])] = []
            return
        assert args[0] == "-I"
        self.rules[(table, args[1])].insert(int(args[2]) - 1, tuple(args[3:]))


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> FakeIptables:
    fake = FakeIptables({})
    monkeypatch.setattr(docker_chains, "snapshot", fake.snapshot)
    monkeypatch.setattr(docker_chains, "_iptables", fake.iptables)
    return fake


def test_the_first_engines_rules_go_back_above_the_return(kernel: FakeIptables) -> None:
    before: docker_chains.Rules = {STAGE1: [E1_OUT, E1_IN, RETURN]}
    kernel.rules = {STAGE1: [E2_IN, RETURN]}  # the second engine's start: its own only
    restored = docker_chains.restore(before, {"snl-a", "snl-b"})
    assert kernel.rules[STAGE1] == [E1_OUT, E1_IN, E2_IN, RETURN]
    assert [r.rule for r in restored] == [E1_OUT, E1_IN]


def test_rules_of_a_bridge_that_is_gone_stay_gone(kernel: FakeIptables) -> None:
    before: docker_chains.Rules = {STAGE1: [GONE, E1_IN, RETURN]}
    kernel.rules = {STAGE1: [RETURN]}
    docker_chains.restore(before, {"snl-a"})
    assert kernel.rules[STAGE1] == [E1_IN, RETURN]


def test_only_the_jump_to_docker_is_put_back_in_prerouting(kernel: FakeIptables) -> None:
    before: docker_chains.Rules = {PREROUTING: [OTHER, JUMP]}
    kernel.rules = {PREROUTING: []}
    docker_chains.restore(before, set())
    assert kernel.rules[PREROUTING] == [JUMP]


def test_a_chain_left_missing_is_created(kernel: FakeIptables) -> None:
    before: docker_chains.Rules = {("nat", "DOCKER"): [("-i", "docker0", "-j", "RETURN")]}
    docker_chains.restore(before, {"docker0"})
    assert kernel.rules[("nat", "DOCKER")] == [("-i", "docker0", "-j", "RETURN")]


def test_nothing_is_done_when_nothing_is_missing(kernel: FakeIptables) -> None:
    before: docker_chains.Rules = {STAGE1: [E1_IN, RETURN], ("filter", "FORWARD"): [OTHER]}
    kernel.rules = {STAGE1: [E1_IN, RETURN], ("filter", "FORWARD"): []}
    assert docker_chains.restore(before, {"snl-a"}) == []
    assert docker_chains.missing(before, kernel.rules) == []  # FORWARD is not Docker's to wipe
