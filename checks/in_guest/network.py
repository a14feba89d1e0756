"""The guest's network paths the backup depends on: DHCP (which hands out the
WireServer address as option 245), the WireServer itself, and storage.

Microsoft's cause 4e: with DHCP off the agent cannot learn the host/fabric address and
no extension runs. The agent caches what it learned in
``/var/lib/waagent/WireServerEndpoint``; after a redeploy changes the address, only a
new DHCP answer tells it the new one. Cause 1: the extension must reach storage
(directly, or through the agent's HttpProxy) to take the snapshot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from checks.context import GuestFacts
from checks.host import GuestHost, quote, read_file, tcp_connect
from checks.in_guest.config import agent_proxy_setting
from checks.in_guest.leases import dhclient_option_245
from checks.in_guest.netstack import INTERFACE, StackState, network_stack
from checks.result import CheckResult

ENDPOINT_FILE = "/var/lib/waagent/WireServerEndpoint"
_DHCP_PORT = re.compile(r"-p udp\b.*--(dport|sport) (67|68)\b")

# The name this module gave the dhclient lease decoder before the other stacks came.
option_245_address = dhclient_option_245


@dataclass(frozen=True)
class DhcpState:
    """eth0's addressing (:class:`~checks.in_guest.netstack.StackState`) and the guest
    firewall rules that drop DHCP (udp 67/68): those also stop the agent's own DHCP
    request, its way to option 245 when it reads no lease."""

    stack: StackState
    firewall: tuple[str, ...] = ()


def dhcp_state(host: GuestHost) -> DhcpState:
    rules = host.run("iptables -S 2>/dev/null").stdout.splitlines()
    blocking = tuple(
        rule for rule in rules if _DHCP_PORT.search(rule) and re.search(r"-j (DROP|REJECT)", rule)
    )
    return DhcpState(network_stack(host), blocking)


def dhcp(host: GuestHost, facts: GuestFacts) -> CheckResult:
    """eth0 configured by DHCP in whichever stack manages it (ifupdown ``inet dhcp``,
    systemd-networkd/netplan ``DHCP=ipv4``, NetworkManager ``ipv4.method auto``), its DHCP
    client running, a lease that carries option 245, and no guest firewall rule
    dropping DHCP."""
    check = "guest.dhcp"
    state = dhcp_state(host)
    stack = state.stack
    if stack.method:
        configured = f"{INTERFACE}: {stack.stack} {stack.method} ({stack.source})"
    else:
        configured = stack.source
    parts = [
        configured,
        f"DHCP client {'running' if stack.client_running else 'not running'} ({stack.client})",
    ]
    if stack.lease is None:
        parts.append("no DHCP lease")
    elif stack.option_245 is None:
        parts.append(f"{stack.lease} has no option 245")
    else:
        parts.append(f"{stack.lease}: option 245 = {stack.option_245}")
    if state.firewall:
        parts.append(f"guest firewall drops DHCP: {' | '.join(state.firewall)}")
    detail = "; ".join(parts)
    healthy = (
        stack.dhcp is not False
        and stack.client_running
        and stack.option_245 is not None
        and not state.firewall
    )
    return CheckResult.ok(check, detail) if healthy else CheckResult.fail(check, detail)


def wireserver(host: GuestHost, facts: GuestFacts) -> CheckResult:
    """The endpoint the agent uses answers ``GET /?comp=versions``."""
    check = "guest.wireserver"
    endpoint = (read_file(host, ENDPOINT_FILE) or "").strip()
    if not endpoint:
        return CheckResult.fail(check, f"{ENDPOINT_FILE} is missing: the agent has no WireServer")
    url = f"http://{endpoint}/?comp=versions"
    out = host.run(f"curl -sS --max-time 5 -w '\\n%{{http_code}}' {quote(url)} 2>&1")
    body, _, code = out.stdout.rstrip().rpartition("\n")
    shown = f"WireServerEndpoint {endpoint}"
    if code == "200" and "<Versions" in body:
        return CheckResult.ok(check, f"{shown} answers GET /?comp=versions")
    why = f"HTTP {code}" if code.isdigit() and code != "000" else _curl_error(out.stdout)
    return CheckResult.fail(check, f"{shown} does not answer GET /?comp=versions: {why}")


def storage_reachable(host: GuestHost, facts: GuestFacts) -> CheckResult:
    """Storage answers on the path the extension takes: through the agent's HttpProxy
    when one is set, else a direct TCP connection."""
    check = "guest.storage_reachable"
    target = f"{facts.storage_ip}:{facts.storage_port}"
    direct = tcp_connect(host, facts.storage_ip, facts.storage_port)
    shown = f"storage {target} direct: {direct.why}"
    proxy, _ = agent_proxy_setting(host)
    if proxy is None:
        detail = f"{shown} (no HttpProxy in waagent.conf: the extension connects directly)"
        return (
            CheckResult.ok(check, detail) if direct.connected else CheckResult.fail(check, detail)
        )
    url = f"http://{target}/"
    out = host.run(
        f"curl -sS -o /dev/null --max-time 5 -w '%{{http_code}}' --proxy {quote(proxy.url)} "
        f"{quote(url)} 2>&1"
    )
    code = out.stdout.strip()[-3:]
    via = f"via HttpProxy {proxy.url}: " + (
        f"HTTP {code}" if code.isdigit() and code != "000" else _curl_error(out.stdout)
    )
    detail = f"{shown}; {via}"
    answered = code.isdigit() and code != "000"
    return CheckResult.ok(check, detail) if answered else CheckResult.fail(check, detail)


def _curl_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("curl:")]
    return lines[-1].removeprefix("curl: ") if lines else "no answer"
