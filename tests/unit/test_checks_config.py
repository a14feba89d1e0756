"""waagent.conf settings and the proxy the agent should (not) be using."""

from __future__ import annotations

from checks.fakes import HEALTHY_CONF, fake_context, healthy_host
from checks.in_guest.config import agent_proxy, parse_conf, waagent_conf

FACTS = fake_context().facts


def test_parse_conf_reads_like_the_agent() -> None:
    text = "# Extensions.Enabled=n\nExtensions.Enabled=y  # on\n  Logs.Verbose=n\nA=1\nA=2\n"
    assert parse_conf(text) == {"Extensions.Enabled": "y", "Logs.Verbose": "n", "A": "2"}


def test_defaults_pass() -> None:
    result = waagent_conf(healthy_host().file("/etc/waagent.conf", "Logs.Verbose=n\n"), FACTS)
    assert result.passed and "Extensions.Enabled=y" in result.detail


def test_extensions_disabled_fails() -> None:
    host = healthy_host().file("/etc/waagent.conf", HEALTHY_CONF + "Extensions.Enabled=n\n")
    result = waagent_conf(host, FACTS)
    assert not result.passed and "Extensions.Enabled=n" in result.detail


def test_provisioning_agent_other_than_auto_fails() -> None:
    host = healthy_host().file(
        "/etc/waagent.conf",
        HEALTHY_CONF.replace("Provisioning.Agent=auto", "Provisioning.Agent=disabled"),
    )
    result = waagent_conf(host, FACTS)
    assert not result.passed and "Provisioning.Agent=disabled" in result.detail


def test_missing_conf_fails() -> None:
    host = healthy_host().on("cat /etc/waagent.conf", "", rc=1)
    assert not waagent_conf(host, FACTS).passed


def test_no_proxy_anywhere_passes() -> None:
    assert agent_proxy(healthy_host(), FACTS).passed


def test_system_proxy_the_agent_ignores_fails_when_it_answers() -> None:
    host = healthy_host().on(
        "grep -Hi proxy", '/etc/environment:http_proxy="http://10.213.9.4:3128"\n'
    )
    result = agent_proxy(host, FACTS)
    assert not result.passed
    assert "http://10.213.9.4:3128" in result.detail and "/etc/environment" in result.detail
    assert host.ran("/dev/tcp/10.213.9.4/3128")


def test_system_proxy_that_does_not_answer_is_not_a_fix_path() -> None:
    host = healthy_host().on(
        "grep -Hi proxy", '/etc/apt/apt.conf.d/90proxy:Acquire::http::Proxy "http://px:8080";\n'
    )
    host.on("timeout 3 bash -c", "", rc=124)
    result = agent_proxy(host, FACTS)
    assert result.passed and "does not answer" in result.detail


def test_configured_proxy_must_answer() -> None:
    conf = HEALTHY_CONF + "HttpProxy.Host=10.213.9.4\nHttpProxy.Port=3128\n"
    host = healthy_host().file("/etc/waagent.conf", conf)
    assert agent_proxy(host, FACTS).passed
    host.on("timeout 3 bash -c", "", rc=1, stderr="bash: connect: Connection refused\n")
    result = agent_proxy(host, FACTS)
    assert not result.passed and "Connection refused" in result.detail


def test_proxy_host_without_port_is_ignored_by_the_agent() -> None:
    host = healthy_host().file("/etc/waagent.conf", HEALTHY_CONF + "HttpProxy.Host=px\n")
    result = agent_proxy(host, FACTS)
    assert not result.passed and "without a numeric HttpProxy.Port" in result.detail


def _with_provisioning(value: str) -> str:
    return HEALTHY_CONF.replace("Provisioning.Agent=auto", f"Provisioning.Agent={value}")


def test_provisioning_by_cloud_init_or_waagent_is_fine() -> None:
    for value in ("cloud-init", "waagent"):
        host = healthy_host().file("/etc/waagent.conf", _with_provisioning(value))
        result = waagent_conf(host, FACTS)
        assert result.passed and f"Provisioning.Agent={value}" in result.detail


def test_provisioning_value_the_agent_does_not_know_fails() -> None:
    host = healthy_host().file("/etc/waagent.conf", _with_provisioning("Auto"))
    result = waagent_conf(host, FACTS)
    assert not result.passed and "'Auto' is not a value the agent knows" in result.detail


def test_agent_older_than_provisioning_agent_ignores_it() -> None:
    host = healthy_host().file("/etc/waagent.conf", _with_provisioning("disabled"))
    host.on("waagent --version", "WALinuxAgent-2.2.44 running on debian 10\nPython: 3.7.3\n")
    result = waagent_conf(host, FACTS)
    assert result.passed and "predates Provisioning.Agent" in result.detail
