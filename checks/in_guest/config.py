"""``/etc/waagent.conf`` and the guest's proxy settings.

Microsoft's article names two agent settings that break backups: ``Extensions.Enabled``
must be ``y`` and ``Provisioning.Agent`` must be ``auto``. The agent reads ``key=value``
lines (``#`` comments, last one wins) and treats only ``y``/``n`` (any case) as switches.

``Provisioning.Agent`` exists from WALinuxAgent 2.2.45 on (``common/conf.py``; it
replaced ``Provisioning.Enabled`` and ``Provisioning.UseCloudInit``, which older agents
read and newer ones ignore). Every version since accepts ``auto``, ``waagent``,
``cloud-init`` and ``disabled``, compared as written (``Auto`` is not ``auto``):
``pa/provision/factory.py`` hands provisioning to cloud-init for ``cloud-init`` (and for
``auto`` when cloud-init is enabled), and ``pa/provision/default.py`` provisions for
``auto``/``waagent`` and skips provisioning for anything else. Images differ: the
agent's own ``config/*/waagent.conf`` all say ``auto``, while SUSE's package and
Microsoft's RHEL image-preparation steps set ``cloud-init``. So
the check holds ``auto``, ``waagent`` and ``cloud-init`` (an agent or cloud-init
provisions the VM, as on Azure's images) to be fine, and names ``disabled`` or a value the
agent does not know; on an agent older than 2.2.45 it says the key is not read.

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
from checks.versions import at_least

CONF = "/etc/waagent.conf"
PROVISIONING_AGENT_SINCE = "2.2.45"
PROVISIONING_AGENT_VALUES = ("auto", "waagent", "cloud-init", "disabled")
# Values under which the agent or cloud-init provisions the VM, as on Azure's images.
PROVISIONING_AGENT_FINE = ("auto", "waagent", "cloud-init")
_INSTALLED = re.compile(r"WALinuxAgent-(\S+)")
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
    """``Extensions.Enabled`` (default y) and ``Provisioning.Agent`` (default auto), as
    the installed agent's version reads them."""
    text = read_file(host, CONF)
    return judge_waagent_conf(text, installed_agent(host) if text is not None else None)


def judge_waagent_conf(text: str | None, version: str | None) -> CheckResult:
    """waagent.conf's text (None: missing) as the agent ``version`` (None: unknown) reads
    it. Shared by the in-guest check and the bundle's."""
    check = "guest.waagent_conf"
    if text is None:
        return CheckResult.fail(check, f"{CONF} is missing or unreadable")
    values = parse_conf(text)
    extensions = values.get("Extensions.Enabled", "y")
    provisioning = values.get("Provisioning.Agent", "auto")
    shown = f"{CONF}: Extensions.Enabled={extensions}, Provisioning.Agent={provisioning}"
    problems = []
    if extensions.lower() == "n":
        problems.append("extension processing is disabled, so no extension runs")
    if version is not None and not at_least(version, PROVISIONING_AGENT_SINCE):
        shown += f" (WALinuxAgent {version} predates Provisioning.Agent and ignores it)"
    else:
        problem = provisioning_problem(provisioning)
        if problem:
            problems.append(problem)
    if problems:
        return CheckResult.fail(check, f"{shown}: {'; '.join(problems)}")
    return CheckResult.ok(check, shown)


def provisioning_problem(value: str) -> str | None:
    """Why ``Provisioning.Agent=<value>`` is a problem for Azure Backup, if it is."""
    if value in PROVISIONING_AGENT_FINE:
        return None
    if value == "disabled":
        return "provisioning is disabled; Azure Backup needs Provisioning.Agent=auto"
    known = ", ".join(PROVISIONING_AGENT_VALUES)
    return (
        f"{value!r} is not a value the agent knows ({known}, as written): it skips "
        "provisioning; Azure Backup needs Provisioning.Agent=auto"
    )


def installed_agent(host: GuestHost) -> str | None:
    """The installed agent's version (``WALinuxAgent-<ver>`` of ``waagent --version``):
    the daemon, which reads the provisioning settings, runs the installed package."""
    found = _INSTALLED.search(host.run("waagent --version 2>&1").stdout)
    return found.group(1) if found else None


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
    return proxy_from_conf(read_file(host, CONF) or "")


def proxy_from_conf(text: str) -> tuple[Proxy | None, str | None]:
    """``(HttpProxy, problem)`` from waagent.conf's text; shared with the bundle's check."""
    values = parse_conf(text)
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
