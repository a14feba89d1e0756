"""The guest's network paths the backup depends on: DHCP (which hands out the
WireServer address as option 245), the WireServer itself, and storage.

Microsoft's cause 4e: with DHCP off the agent cannot learn the host/fabric address and
no extension runs. The agent caches what it learned in
``/var/lib/waagent/WireServerEndpoint``; after a redeploy changes the address, only a
new DHCP answer tells it the new one. Cause 1: the extension must reach storage
(directly, or through the agent's HttpProxy) to take the snapshot.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from checks.context import GuestFacts
from checks.host import GuestHost, quote, read_file, tcp_connect
from checks.in_guest.config import agent_proxy_setting
from checks.result import CheckResult

INTERFACE = "eth0"
ENDPOINT_FILE = "/var/lib/waagent/WireServerEndpoint"
LEASE_GLOB = "/var/lib/dhcp/dhclient*.leases"
_IFACE = re.compile(rf"^\s*iface\s+{INTERFACE}\s+inet\s+(\S+)", re.MULTILINE)
_DHCP_PORT = re.compile(r"-p udp\b.*--(dport|sport) (67|68)\b")
_OPTION_245 = re.compile(r"option\s+unknown-245\s+([0-9a-fA-F]{1,2}(?::[0-9a-fA-F]{1,2}){3})\s*;")


@dataclass(frozen=True)
class DhcpState:
    method: str | None  # ifupdown's "dhcp" / "static" / ...; None: no stanza found
    source: str
    client_running: bool
    lease_file: str | None
    option_245: str | None
    firewall: tuple[str, ...] = ()  # guest iptables rules dropping DHCP (udp 67/68)


def option_245_address(lease_text: str) -> str | None:
    """The WireServer address from the last ``option unknown-245 a:b:c:d;`` in a lease."""
    found = _OPTION_245.findall(lease_text)
    if not found:
        return None
    return str(ipaddress.IPv4Address(bytes(int(part, 16) for part in found[-1].split(":"))))


def dhcp_state(host: GuestHost) -> DhcpState:
    conf = host.run(
        "grep -H -E '^[[:space:]]*iface[[:space:]]' "
        "/etc/network/interfaces /etc/network/interfaces.d/* 2>/dev/null"
    )
    method, source = None, "no ifupdown stanza for eth0"
    for line in conf.stdout.splitlines():
        path, _, stanza = line.partition(":")
        match = _IFACE.match(stanza)
        if match:
            method, source = match.group(1), path
    procs = host.run("ps -eo args=")
    client = any(
        re.search(r"\b(dhclient|dhcpcd|udhcpc)\b", args) and INTERFACE in args
        for args in procs.stdout.splitlines()
    )
    newest = host.run(f"ls -1t {LEASE_GLOB} 2>/dev/null | head -n 1").stdout.strip() or None
    option = option_245_address(read_file(host, newest) or "") if newest else None
    rules = host.run("iptables -S 2>/dev/null").stdout.splitlines()
    blocking = tuple(
        rule for rule in rules if _DHCP_PORT.search(rule) and re.search(r"-j (DROP|REJECT)", rule)
    )
    return DhcpState(method, source, client, newest, option, blocking)


def dhcp(host: GuestHost, facts: GuestFacts) -> CheckResult:
    """eth0 configured by DHCP (ifupdown ``inet dhcp``), a DHCP client running for it, a
    lease that carries option 245, and no guest firewall rule dropping DHCP."""
    check = "guest.dhcp"
    state = dhcp_state(host)
    parts = [
        f"{INTERFACE}: inet {state.method} ({state.source})" if state.method else state.source,
        f"DHCP client {'running' if state.client_running else 'not running'}",
    ]
    if state.lease_file is None:
        parts.append("no DHCP lease file")
    elif state.option_245 is None:
        parts.append(f"{state.lease_file} has no option 245")
    else:
        parts.append(f"{state.lease_file}: option 245 = {state.option_245}")
    if state.firewall:
        parts.append(f"guest firewall drops DHCP: {' | '.join(state.firewall)}")
    detail = "; ".join(parts)
    healthy = (
        state.method in (None, "dhcp")
        and state.client_running
        and state.option_245 is not None
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
