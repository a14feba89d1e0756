"""NSG rules read from ``iptables -S`` lines tagged ``snaplab.nsg=``."""

from __future__ import annotations

import ipaddress

from checks.nsg import first_match, parse_iptables_rule


def test_deny_rule_is_parsed() -> None:
    rule = parse_iptables_rule(
        "-A DOCKER-USER -s 10.213.1.10/32 -d 10.213.1.3/32 -i snl-abc -o snl-abc -p tcp "
        '-m tcp --dport 10000 -m comment --comment "snaplab.nsg=dg1/vm1/deny-storage" -j DROP'
    )
    assert rule is not None and not rule.allow
    assert rule.source == ipaddress.IPv4Network("10.213.1.10/32")
    assert rule.destination == ipaddress.IPv4Network("10.213.1.3/32")
    assert rule.protocol == "tcp" and rule.ports == ((10000, 10000),)
    assert rule.matches("10.213.1.10", "10.213.1.3", "tcp", 10000)
    assert not rule.matches("10.213.1.11", "10.213.1.3", "tcp", 10000)
    assert not rule.matches("10.213.1.10", "10.213.1.3", "tcp", 443)


def test_port_lists_ranges_and_any() -> None:
    rule = parse_iptables_rule(
        "-A DOCKER-USER -s 10.0.0.0/8 -p tcp -m multiport --dports 80,9000:10010 "
        "-m comment --comment snaplab.nsg=x -j REJECT --reject-with icmp-port-unreachable"
    )
    assert rule is not None and rule.ports == ((80, 80), (9000, 10010))
    assert rule.matches("10.1.2.3", "192.168.0.1", "tcp", 10000)
    assert not rule.matches("10.1.2.3", "192.168.0.1", "udp", 10000)


def test_lab_and_docker_rules_are_not_nsg_rules() -> None:
    assert (
        parse_iptables_rule(
            "-A DOCKER-USER -i snl-a -o snl-a -p udp -m multiport --dports 67,68 "
            '-m comment --comment "snaplab.lab=dg1" -j ACCEPT'
        )
        is None
    )
    assert parse_iptables_rule("-A DOCKER-USER -j RETURN") is None
    assert parse_iptables_rule("-N DOCKER-USER") is None


def test_first_match_in_order() -> None:
    allow = parse_iptables_rule(
        "-A DOCKER-USER -s 10.213.1.10/32 -d 10.213.1.3/32 -m comment "
        "--comment snaplab.nsg=allow -j ACCEPT"
    )
    deny = parse_iptables_rule("-A DOCKER-USER -m comment --comment snaplab.nsg=deny-all -j DROP")
    assert allow is not None and deny is not None
    assert first_match([allow, deny], "10.213.1.10", "10.213.1.3", "tcp", 10000) is allow
    assert first_match([deny, allow], "10.213.1.10", "10.213.1.3", "tcp", 10000) is deny
    assert first_match([allow], "10.213.1.11", "10.213.1.3", "tcp", 10000) is None


def test_rule_with_a_lab_comment_and_a_bare_nsg_mark() -> None:
    rule = parse_iptables_rule(
        "-A DOCKER-USER -s 10.213.0.10/32 -d 10.213.0.3/32 -i snl-c6 -o snl-c6 -p tcp -m tcp "
        '--dport 10000 -m comment --comment "snaplab.lab=fa1" -m comment --comment '
        '"snaplab.nsg" -j DROP'
    )
    assert rule is not None and not rule.allow
    assert rule.name == "snaplab.lab=fa1 snaplab.nsg"
    assert rule.matches("10.213.0.10", "10.213.0.3", "tcp", 10000)
