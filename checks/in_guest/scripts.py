"""Application-consistency pre/post scripts (the Linux counterpart of the article's
SQL/VSS delay): a pre-script that hangs holds the snapshot until its timeout (308); if
the extension were allowed to wait for it longer than the platform waits for the
snapshot's status, the sub-task would time out. Script timeouts are Azure seconds, so
they are compared with the sub-task timeout in Azure seconds, whatever the lab's scale.

Configuration as the VMSnapshot extension reads it: ``/etc/azure/VMSnapshotPluginHost.conf``
(``[pre_post]``: ``timeoutInSeconds``, ``pluginConfigPath0``; the handler ships a default
copy) names ``/etc/azure/VMSnapshotScriptPluginConfig.json`` (``preScriptLocation``,
``postScriptLocation``, ``timeoutInSeconds``, ``continueBackupOnFailure``). The script
timeout is the smaller of the two; the extension runs a script as ``sh <location>``
and leaves one that timed out running.
"""

from __future__ import annotations

import configparser
import json
from dataclasses import dataclass

from checks.context import GuestFacts
from checks.host import GuestHost, read_file
from checks.in_guest.handler import handler_dirs
from checks.result import CheckResult, one_line
from lab.platform.timescale import SNAPSHOT_SUBTASK_TIMEOUT

HOST_CONF = "/etc/azure/VMSnapshotPluginHost.conf"
PLUGIN_CONF = "/etc/azure/VMSnapshotScriptPluginConfig.json"
HOST_TIMEOUT_CAP = 1800  # the plugin host never waits longer
SCRIPT_TIMEOUT_DEFAULT = 10  # when the plugin config names none
# Codes the extension reports when a script, or the plugin host, timed out.
SCRIPT_TIMEOUT_CODES = {"308", "309", "310", "311"}


@dataclass(frozen=True)
class ScriptConfig:
    pre: str
    post: str
    timeout: float
    continue_on_failure: bool
    source: str


def script_config(host: GuestHost) -> tuple[ScriptConfig | None, str]:
    """The effective script configuration, or None and why there is none."""
    host_text = read_file(host, HOST_CONF)
    host_source = HOST_CONF
    if host_text is None:
        dirs = handler_dirs(host)
        if dirs.current is not None:
            host_source = f"{dirs.directory(dirs.current)}/main/VMSnapshotPluginHost.conf"
            host_text = read_file(host, host_source)
    host_timeout, plugin_path = float(HOST_TIMEOUT_CAP), PLUGIN_CONF
    if host_text is not None:
        parser = configparser.ConfigParser()
        try:
            parser.read_string(host_text)
            if parser.has_option("pre_post", "timeoutInSeconds"):
                host_timeout = min(float(parser.get("pre_post", "timeoutInSeconds")), host_timeout)
            count = int(parser.get("pre_post", "numberOfPlugins", fallback="0"))
            if count < 1:
                return None, f"{host_source}: no plugins configured"
            plugin_path = parser.get("pre_post", "pluginConfigPath0", fallback=PLUGIN_CONF)
        except (configparser.Error, ValueError) as exc:
            return None, f"{host_source} unreadable ({exc}): the extension skips scripts"
    plugin_text = read_file(host, plugin_path)
    if plugin_text is None:
        return None, f"no {plugin_path}: no pre/post scripts configured"
    try:
        data = json.loads(plugin_text)
        timeout = min(float(data.get("timeoutInSeconds", SCRIPT_TIMEOUT_DEFAULT)), host_timeout)
        config = ScriptConfig(
            pre=str(data["preScriptLocation"]),
            post=str(data["postScriptLocation"]),
            timeout=timeout,
            continue_on_failure=bool(data.get("continueBackupOnFailure", True)),
            source=plugin_path,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return None, f"{plugin_path} unreadable ({exc!r}): the extension skips scripts"
    return config, ""


def running_scripts(host: GuestHost, config: ScriptConfig) -> list[str]:
    out = host.run("ps -eo pid=,etimes=,args=")
    found = []
    for line in out.stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 3:
            continue
        argv = parts[2].split()
        for kind, location in (("pre", config.pre), ("post", config.post)):
            if location in argv:
                found.append(f"{kind}-script pid {parts[0]} running {parts[1]} s ({parts[2][:80]})")
    return found


def prepost_scripts(host: GuestHost, facts: GuestFacts) -> CheckResult:
    """Fails when a configured script is running now and the extension may wait for it
    at least as long as the platform's snapshot sub-task timeout, or when the newest
    snapshot status reports a script or plugin-host timeout."""
    check = "guest.prepost_scripts"
    config, why = script_config(host)
    if config is None:
        return CheckResult.ok(check, why)
    limit = SNAPSHOT_SUBTASK_TIMEOUT.azure_seconds  # Azure seconds, as timeoutInSeconds
    shown = (
        f"{config.source}: pre {config.pre}, post {config.post}, timeout {config.timeout:g} s "
        f"(Azure seconds; snapshot sub-task timeout {limit:g} s), continueBackupOnFailure "
        f"{str(config.continue_on_failure).lower()}"
    )
    running = running_scripts(host, config)
    problems = []
    if running and config.timeout >= limit:
        problems.append(
            f"{'; '.join(running)} — the extension waits up to {config.timeout:g} s, "
            "longer than the platform waits for the snapshot"
        )
    timed_out = _last_script_timeout(host)
    if timed_out:
        problems.append(timed_out)
    if problems:
        return CheckResult.fail(check, f"{shown}; " + "; ".join(problems))
    if running:
        shown += f"; {'; '.join(running)} (cut off by its timeout before the sub-task's)"
    return CheckResult.ok(check, shown)


def _last_script_timeout(host: GuestHost) -> str:
    dirs = handler_dirs(host)
    if dirs.current is None:
        return ""
    status_dir = f"{dirs.directory(dirs.current)}/status"
    newest = host.run(f"ls -1t {status_dir}/*.status 2>/dev/null | head -n 1").stdout.strip()
    text = read_file(host, newest) if newest else None
    return script_timeout_in(newest.rsplit("/", 1)[-1], text)


def script_timeout_in(name: str, text: str | None) -> str:
    """What a handler status file ``name`` says about a pre/post script or plugin-host
    timeout ("" when nothing); shared with the bundle's check."""
    try:
        status = json.loads(text or "")[0]["status"]
    except (ValueError, TypeError, KeyError, IndexError):
        return ""
    if not isinstance(status, dict):
        return ""
    if str(status.get("status")) in ("success", "warning"):
        return ""  # a script timed out but continueBackupOnFailure let the backup finish
    message = one_line(str((status.get("formattedMessage") or {}).get("message", "")))
    if str(status.get("code")) not in SCRIPT_TIMEOUT_CODES:
        return ""
    return f"newest status {name}: {status.get('status')}, code {status.get('code')}: {message}"
