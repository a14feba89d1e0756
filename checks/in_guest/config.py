"""``/etc/waagent.conf`` and the guest's proxy settings.

Microsoft's article names two agent settings that break backups: ``Extensions.Enabled``
must be ``y`` and ``Provisioning.Agent`` must be ``auto``. The agent reads ``key=value``
lines (``#`` comments, last one wins) and treats only ``y``/``n`` (any case) as switches.

The proxy check answers a different question: is there an HTTP proxy this VM is meant
to use that the agent does not? The agent and the VMSnapshot extension only honour
``HttpProxy.Host``/``HttpProxy.Port`` in waagent.conf — a systemd service never reads a
login shell's ``http_proxy`` — so a VM whose organisation routes egress through a proxy
(``/etc/environment``, ``/etc/profile.d``, apt's ``Acquire::http::Proxy``) while
waagent.conf names none sends its snapshots straight at storage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from checks.context import GuestFacts
from checks.host import GuestHost, read_file, tcp_connect
from checks.result import CheckResult

CONF = "/etc/waagent.conf"
# Where a Debian VM's system-wide proxy is usually set, in the order they are reported.
SYSTEM_PROXY_FILES = "/etc/environment /etc/profile.d/*.sh /etc/apt/apt.conf /etc/apt/apt.conf.d/*"
_ENV_PROXY = re.compile(
    r"""^\s*(?:export\s+)?(?:http|https)_proxy\s*=\s*["']?([^"'\s]+)""", re.IGNORECASE
)
_APT_PROXY = re.compile(r"""Acquire::https?::Proxy\s+"([^"]+)\"""", re.IGNORECASE)


def parse_conf(text: str) -> dict[str, str]:
    """waagent.conf as the agent reads it: the first word of each non-comment line with a
    ``=`` is ``key=value`` (so trailing text is ignored); the last one of a key wins."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#") or "=" not in line or not line.split():
            continue
        key, _, value = line.split()[0].partition("=")
        values[key.strip()] = value.strip('" ')
    return values


def waagent_conf(host: GuestHost, facts: GuestFacts) -> CheckResult:
    """``Extensions.Enabled`` (default y) and ``Provisioning.Agent`` (default auto)."""
    check = "guest.waagent_conf"
    text = read_file(host, CONF)
    if text is None:
        return CheckResult.fail(check, f"{CONF} is missing or unreadable")
    values = parse_conf(text)
    extensions = values.get("Extensions.Enabled", "y")
    provisioning = values.get("Provisioning.Agent", "auto")
    shown = f"{CONF}: Extensions.Enabled={extensions}, Provisioning.Agent={provisioning}"
    problems = []
    if extensions.lower() == "n":
        problems.append("extension processing is disabled, so no extension runs")
    if provisioning.lower() != "auto":
        problems.append("Azure Backup needs Provisioning.Agent=auto")
    if problems:
        return CheckResult.fail(check, f"{shown}: {'; '.join(problems)}")
    return CheckResult.ok(check, shown)


@dataclass(frozen=True)
class Proxy:
    host: str
    port: int
    source: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def agent_proxy_setting(host: GuestHost) -> tuple[Proxy | None, str | None]:
    """``(HttpProxy from waagent.conf, problem)``; the agent ignores a host without a port."""
    values = parse_conf(read_file(host, CONF) or "")
    proxy_host = values.get("HttpProxy.Host", "")
    proxy_port = values.get("HttpProxy.Port", "")
    if not proxy_host or proxy_host == "None":
        return None, None
    if not proxy_port.isdigit():
        return None, f"HttpProxy.Host={proxy_host} without a numeric HttpProxy.Port (ignored)"
    return Proxy(proxy_host, int(proxy_port), CONF), None


def system_proxy(host: GuestHost) -> Proxy | None:
    """The first system-wide HTTP proxy the guest is configured with, if any."""
    out = host.run(f"grep -Hi proxy {SYSTEM_PROXY_FILES} 2>/dev/null")
    for line in out.stdout.splitlines():
        path, _, content = line.partition(":")
        match = _ENV_PROXY.match(content) or _APT_PROXY.search(content)
        if match is None:
            continue
        parts = urlsplit(match.group(1) if "://" in match.group(1) else f"http://{match.group(1)}")
        if parts.hostname:
            return Proxy(parts.hostname, parts.port or 80, path)
    return None


def agent_proxy(host: GuestHost, facts: GuestFacts) -> CheckResult:
    """HttpProxy set and answering, or — when unset — no system proxy the agent ignores."""
    check = "guest.agent_proxy"
    configured, problem = agent_proxy_setting(host)
    if problem:
        return CheckResult.fail(check, f"{CONF}: {problem}")
    if configured is not None:
        reach = tcp_connect(host, configured.host, configured.port)
        shown = f"{CONF}: HttpProxy {configured.url}"
        if reach.connected:
            return CheckResult.ok(check, f"{shown} answers")
        return CheckResult.fail(check, f"{shown} does not answer: {reach.why}")
    system = system_proxy(host)
    if system is None:
        return CheckResult.ok(check, "no HttpProxy in waagent.conf and no system proxy: direct")
    reach = tcp_connect(host, system.host, system.port)
    if not reach.connected:
        return CheckResult.ok(
            check,
            f"system proxy {system.url} ({system.source}) does not answer ({reach.why}); "
            "waagent.conf sets no HttpProxy: direct",
        )
    return CheckResult.fail(
        check,
        f"system proxy {system.url} ({system.source}) answers, but {CONF} sets no "
        "HttpProxy.Host/Port: the agent and the VMSnapshot extension bypass it",
    )
