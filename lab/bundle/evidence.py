"""Checks that work from a bundle's files: the same check ids as :mod:`checks.registry`,
judged by the same functions as the in-guest checks, fed from files instead of commands.

A bundle is what the agent's log collector copies (normal mode: waagent.conf, the agent's
and the extensions' logs, handler status and settings files, goal-state files; full mode
adds the DHCP lease). What it never holds cannot be judged: processes, unit files, a TCP
connection, CPU samples, anything on the platform. Those checks are listed in
:data:`CANNOT_RUN` with the reason, and a check whose files are missing from this bundle
is "not observed" — never passed on missing evidence.

Every result carries the lines it rests on (``path:line: text``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from checks.context import GuestFacts
from checks.in_guest.agent import judge_agent_version
from checks.in_guest.config import CONF, judge_waagent_conf, proxy_from_conf
from checks.in_guest.handler import (
    HANDLER,
    HEALTHY_STATES,
    AgentView,
    download_failures_in,
    judge_extension_status,
    parse_status,
)
from checks.in_guest.leases import dhclient_option_245
from checks.in_guest.scripts import script_timeout_in
from checks.registry import ALL_CHECKS
from checks.result import CheckResult, one_line
from checks.versions import parse
from lab.bundle.agentlog import Record, agent_records, benign, member_text
from lab.bundle.reader import Bundle
from lab.platform.timescale import AGENT_STATUS_STALE_AFTER, SNAPSHOT_SUBTASK_TIMEOUT

LIB = "var/lib/waagent"
CONF_MEMBER = CONF.lstrip("/")
LEASES = ("var/lib/dhcp/dhclient.eth0.leases", "var/lib/dhclient/dhclient-eth0.leases")
KERNEL_LOGS = ("var/log/syslog*", "var/log/messages*", "var/log/kern*", "var/log/dmesg*")
RESULTS = "results.txt"

_INSTALLED = re.compile(r"Azure Linux Agent Version:\s*(\S+)")
_GOAL = re.compile(
    r"(?:WALinuxAgent-(\S+) running as process"
    r"|Agent WALinuxAgent-(\S+) is running as the goal state agent"
    r"|Goal State Agent version (\d[\d.]*))"
)
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)")
_OOM = re.compile(r"Out of memory: Kill|invoked oom-killer|oom-kill:|Memory cgroup out of memory")
_UNIT_STOP = re.compile(
    r"(?:Stopped|Stopping) (?:Azure Linux Agent|walinuxagent|waagent)"
    r"|(?:walinuxagent|waagent)\.service: (?:Main process exited|Failed with result|Deactivated)"
)
_UNIT_START = re.compile(r"Started (?:Azure Linux Agent|walinuxagent|waagent)")
# The daemon passes SIGTERM/SIGINT on to the extension-handler process as it stops
# (2.2.x to 2.12 write this line): the agent's own record of ``systemctl stop``.
_STOP_SIGNAL = re.compile(r"forwarding signal (15|2) to WALinuxAgent")
INTERFACES = "etc/network/interfaces"
_IFACE = re.compile(r"^\s*iface\s+eth0\s+inet\s+(\S+)")
_DHCP_FAILED = re.compile(
    r"(?i)Failed to send DHCP request|DHCP request (?:failed|timed out)|no DHCP response"
)
# results.txt of a bundle read from a stopped VM's disk (a rescue VM, or snaplab
# collect-logs of a VM shut down inside) says so.
_OFFLINE = re.compile(r"(?i)VM is not running|rescue VM|read from the (?:VM's )?disk")
# The VMSnapshot extension's status when a snapshot could not reach storage.
_NO_NETWORK = re.compile(r"SnapshotFailedNoNetwork")
_HANDLER_LINE = re.compile(re.escape(HANDLER) + r"-(\d[\d.]*)")


@dataclass(frozen=True)
class Found:
    """A check's result from a bundle and the lines it rests on."""

    result: CheckResult
    lines: tuple[Record, ...] = ()


@dataclass(frozen=True)
class BundleView:
    """A bundle with the facts several checks share, read once."""

    bundle: Bundle
    log: tuple[Record, ...]
    collected_at: datetime | None
    offline: str | None = None  # results.txt's line saying the VM was not running

    @classmethod
    def of(cls, bundle: Bundle) -> BundleView:
        offline = next(
            (f"{RESULTS}:{n}" for n, line in bundle.lines(RESULTS) if _OFFLINE.search(line)),
            None,
        )
        return cls(bundle, tuple(agent_records(bundle)), collection_time(bundle), offline)

    def handler_versions(self) -> tuple[str, ...]:
        """VMSnapshot handler directories the bundle holds files of, oldest first."""
        prefix = f"{LIB}/{HANDLER}-"
        versions = {
            name[len(prefix) :].split("/", 1)[0]
            for name in self.bundle.files()
            if name.startswith(prefix)
        }
        return tuple(sorted((v for v in versions if parse(v)), key=lambda v: parse(v) or ()))

    def handler_file(self, version: str, tail: str) -> str:
        return f"{LIB}/{HANDLER}-{version}/{tail}"

    def installed_agent(self) -> Record | None:
        """The newest daemon line naming the installed agent's version."""
        return next((r for r in reversed(self.log) if _INSTALLED.search(r.text)), None)


def collection_time(bundle: Bundle) -> datetime | None:
    """When the bundle was collected: the last timestamp of results.txt (the collector's
    own log), else None."""
    last = None
    for _, line in bundle.lines(RESULTS):
        match = _STAMP.match(line)
        if match:
            last = match.group(1)
    if last is None:
        return None
    return datetime.strptime(last, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)


def _first(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    return next((group for group in match.groups() if group), None) if match else None


def _unobserved(check: str, why: str) -> Found:
    return Found(CheckResult.unobserved(check, why))


def _no_agent_log(check: str) -> Found:
    return _unobserved(check, "the bundle holds no var/log/waagent.log")


def agent_version(view: BundleView) -> Found:
    """The newest goal-state agent line and the daemon's version line of waagent.log."""
    check = "guest.agent_version"
    if not view.log:
        return _no_agent_log(check)
    installed = view.installed_agent()
    goal = next((r for r in reversed(view.log) if _GOAL.search(r.text)), None)
    if installed is None and goal is None:
        return _unobserved(check, "waagent.log names no agent version")
    lines = tuple(r for r in (installed, goal) if r is not None)
    result = judge_agent_version(
        _first(_INSTALLED, installed.text) if installed else None,
        _first(_GOAL, goal.text) if goal else None,
        f" ({', '.join(f'{r.path}:{r.line}' for r in lines)})",
    )
    return Found(result, lines)


def agent_running(view: BundleView) -> Found:
    """Whether the agent ran when the bundle was collected: the agent's status file
    (``waagent_status*.json``, rewritten on every status report by 2.2.x and 2.7.x) no
    older than the 10 minutes after which Azure calls an agent Not Ready, and no
    ``systemd`` line stopping the agent's unit after its last start (syslog, when the
    bundle has it)."""
    check = "guest.agent_running"
    if view.offline is not None:
        signal = _last_stop_signal(view.log)
        seen = f"; its log ends with the daemon told to stop ({signal})" if signal else ""
        return _unobserved(
            check,
            f"the bundle was read from the disk of a VM that was not running "
            f"({view.offline}): a stopped agent and a stopped OS look alike in its files{seen}",
        )
    signal = _last_stop_signal(view.log)
    if signal is not None:
        return Found(
            CheckResult.fail(
                check,
                f"the agent's daemon was told to stop ({one_line(signal.text, 160)}) "
                "and its log shows no start after it",
            ),
            (signal,),
        )
    stops = _unit_events(view.bundle)
    if stops and _UNIT_STOP.search(stops[-1].text):
        return Found(
            CheckResult.fail(check, f"the agent's unit was stopped: {stops[-1]}"), (stops[-1],)
        )
    status = sorted(
        view.bundle.glob(f"{LIB}/waagent_status*.json"),
        key=lambda name: view.bundle.mtime(name) or datetime.min,
    )
    if not status or view.collected_at is None:
        restarts = _unannounced_starts(view.log)
        also = (
            f"; the daemon started {len(restarts)} time(s) with no stop before it (killed or "
            f"crashed, then restarted), the last: {restarts[-1]}"
            if restarts
            else ""
        )
        why = (
            "no waagent_status*.json in the bundle (2.12 keeps none; the collector of 2.7 "
            "does not copy it), no stop in waagent.log and no systemd lines about the agent"
            if not status
            else "results.txt gives no collection time to compare the agent's status with"
        )
        return _unobserved(check, why + also)
    newest = status[-1]
    written = view.bundle.mtime(newest)
    if written is None:
        return _unobserved(check, f"{newest}: no modification time in the zip")
    age = (view.collected_at - written).total_seconds()
    limit = AGENT_STATUS_STALE_AFTER.azure_seconds
    record = Record(newest, 1, f"last written {written:%Y-%m-%dT%H:%M:%SZ}")
    last = view.log[-1] if view.log else None
    shown = (
        f"{newest} last written {age:.0f} s before the bundle was collected "
        f"({view.collected_at:%Y-%m-%dT%H:%M:%SZ})"
    )
    lines = (record,) + ((last,) if last else ())
    if age > limit:
        detail = (
            f"{shown}: the agent stopped reporting (Azure calls it Not Ready after {limit:.0f} s)"
        )
        if last is not None:
            detail += f"; its last log line: {one_line(last.text, 120)}"
        return Found(CheckResult.fail(check, detail), lines)
    return Found(CheckResult.ok(check, f"{shown}: the agent was reporting"), (record,))


def _last_stop_signal(log: tuple[Record, ...]) -> Record | None:
    """The daemon's "forwarding signal 15" (SIGTERM: systemctl stop) or 2 (SIGINT) line,
    when no daemon start follows it: the agent stopped and stayed stopped."""
    for record in reversed(log):
        if _INSTALLED.search(record.text):
            return None  # a start after any stop: the agent came back
        if _STOP_SIGNAL.search(record.text):
            return record
    return None


def _unannounced_starts(log: tuple[Record, ...]) -> list[Record]:
    """Daemon starts after the first with no stop signal since the start before: the
    agent was killed (SIGKILL, the OOM killer) or crashed, and systemd started it again."""
    found: list[Record] = []
    started, stopped = False, False
    for record in log:
        if _STOP_SIGNAL.search(record.text):
            stopped = True
        elif _INSTALLED.search(record.text):
            if started and not stopped:
                found.append(record)
            started, stopped = True, False
    return found


def _unit_events(bundle: Bundle) -> list[Record]:
    found: list[Record] = []
    for pattern in ("var/log/syslog*", "var/log/messages*"):
        for member in sorted(bundle.glob(pattern), reverse=True):
            found.extend(
                Record(member, number, line)
                for number, line in enumerate(member_text(bundle, member).splitlines(), 1)
                if _UNIT_STOP.search(line) or _UNIT_START.search(line)
            )
    return found


def waagent_conf(view: BundleView) -> Found:
    """etc/waagent.conf judged as the in-guest check judges it, for the agent version
    the daemon's log line names."""
    check = "guest.waagent_conf"
    text = view.bundle.read_text(CONF_MEMBER)
    if text is None:
        return _unobserved(check, f"the bundle holds no {CONF_MEMBER}")
    installed = view.installed_agent()
    version = _first(_INSTALLED, installed.text) if installed else None
    lines = _conf_lines(view.bundle, ("Extensions.Enabled", "Provisioning.Agent"))
    return Found(judge_waagent_conf(text, version), lines)


def _conf_lines(bundle: Bundle, keys: tuple[str, ...]) -> tuple[Record, ...]:
    return tuple(
        Record(CONF_MEMBER, number, line)
        for number, line in bundle.lines(CONF_MEMBER)
        if not line.startswith("#") and line.split("=", 1)[0].strip() in keys
    )


def agent_proxy(view: BundleView) -> Found:
    """HttpProxy in waagent.conf; a bundle holds neither the guest's system proxy
    (/etc/environment) nor a way to test the proxy, so only a malformed setting fails."""
    check = "guest.agent_proxy"
    text = view.bundle.read_text(CONF_MEMBER)
    if text is None:
        return _unobserved(check, f"the bundle holds no {CONF_MEMBER}")
    lines = _conf_lines(view.bundle, ("HttpProxy.Host", "HttpProxy.Port"))
    proxy, problem = proxy_from_conf(text)
    if problem:
        return Found(CheckResult.fail(check, f"{CONF}: {problem}"), lines)
    if proxy is not None:
        return _unobserved(
            check,
            f"{CONF}: HttpProxy {proxy.url}; whether it answers cannot be tested from a bundle",
        )
    return _unobserved(
        check,
        "no HttpProxy in waagent.conf; a bundle holds no system proxy settings "
        "(/etc/environment) to compare with",
    )


def dhcp(view: BundleView) -> Found:
    """The agent's own lines about its DHCP request (every bundle), eth0's ifupdown
    stanza (full mode), then option 245 in the dhclient lease (full mode). A lease that
    names the WireServer is no proof of DHCP: a static VM keeps its last lease."""
    check = "guest.dhcp"
    failed = [r for r in view.log if _DHCP_FAILED.search(r.text) and not benign(r.text)]
    if failed:
        return Found(
            CheckResult.fail(
                check, f"the agent could not use DHCP: {one_line(failed[-1].text, 160)}"
            ),
            tuple(failed[-3:]),
        )
    for name in (INTERFACES, *view.bundle.glob(f"{INTERFACES}.d/*")):
        for number, line in view.bundle.lines(name):
            match = _IFACE.match(line)
            if match and match.group(1) != "dhcp":
                return Found(
                    CheckResult.fail(
                        check, f"{name}: eth0 is configured 'inet {match.group(1)}', not DHCP"
                    ),
                    (Record(name, number, line),),
                )
    for lease in LEASES:
        text = view.bundle.read_text(lease)
        if text is None:
            continue
        option = dhclient_option_245(text)
        if option is not None:
            return Found(CheckResult.ok(check, f"{lease}: option 245 (WireServer) {option}"))
        return Found(
            CheckResult.fail(check, f"{lease}: no option 245 in the lease"),
            (Record(lease, 1, "lease without option unknown-245"),),
        )
    return _unobserved(check, "the bundle holds no DHCP lease (a full-mode bundle has it)")


def handler_files(view: BundleView) -> Found:
    """HandlerState and the agent's HandlerStatus of the handler in use; the handler's
    manifest and scripts are not in a bundle, so their damage shows only as the agent's
    failure to run a command."""
    check = "guest.handler_files"
    versions = view.handler_versions()
    if not versions:
        return Found(CheckResult.ok(check, f"the bundle holds no {HANDLER} handler files"))
    version = _current(view, versions)
    base = view.handler_file(version, "")
    state_file = view.handler_file(version, "config/HandlerState")
    status_file = view.handler_file(version, "config/HandlerStatus")
    state = (view.bundle.read_text(state_file) or "").strip()
    agent_view = AgentView.parse(view.bundle.read_text(status_file))
    problems, lines = [], []
    if state and state not in HEALTHY_STATES and state != "FailedUpgrade":
        problems.append(f"HandlerState {state}")
        lines.append(Record(state_file, 1, state))
    if agent_view is not None and agent_view.not_ready and agent_view.code != "0":
        problems.append(f"the agent could not run the handler{agent_view.describe()}")
        lines.append(Record(status_file, 1, one_line(view.bundle.read_text(status_file) or "")))
    failing = [
        r
        for r in view.log
        if HANDLER in r.text
        and re.search(r"Non-zero exit code|ExtensionError|failed with", r.text)
        and f"-{version}" in r.text
    ]
    lines.extend(failing[-3:])
    shown = f"{base.rstrip('/')}: HandlerState {state or 'none'}"
    if problems:
        return Found(CheckResult.fail(check, f"{shown}; " + "; ".join(problems)), tuple(lines))
    return Found(
        CheckResult.ok(check, f"{shown} (manifest and scripts are not in a bundle)"),
        tuple(lines),
    )


def _current(view: BundleView, versions: tuple[str, ...]) -> str:
    wanted = requested(view)
    if wanted is not None and wanted[0] in versions:
        return wanted[0]
    return versions[-1]


def requested(view: BundleView) -> tuple[str, str, str] | None:
    """``(version, state, member)`` the newest ExtensionsConfig in the bundle asks of the
    VMSnapshot handler (top-level files; goal-state history zips are not opened)."""
    configs = view.bundle.glob(f"{LIB}/ExtensionsConfig.*.xml")
    configs.sort(key=lambda n: int(n.rsplit(".", 2)[-2]) if n.rsplit(".", 2)[-2].isdigit() else -1)
    for name in reversed(configs):
        try:
            root = ET.fromstring(view.bundle.read_text(name) or "")
        except ET.ParseError:
            continue
        for plugin in root.iter("Plugin"):
            if plugin.get("name") == HANDLER and plugin.get("version"):
                return str(plugin.get("version")), str(plugin.get("state")), name
    return None


def extension_package(view: BundleView) -> Found:
    """HandlerState FailedUpgrade, or waagent.log saying the agent could not fetch or
    unpack the version the goal state asks for (or, without a goal state in the bundle,
    any version it names)."""
    check = "guest.extension_package"
    versions = view.handler_versions()
    failed = [
        v
        for v in versions
        if (view.bundle.read_text(view.handler_file(v, "config/HandlerState")) or "").strip()
        == "FailedUpgrade"
    ]
    if failed:
        member = view.handler_file(failed[-1], "config/HandlerState")
        return Found(
            CheckResult.fail(check, f"{HANDLER} {', '.join(failed)}: HandlerState FailedUpgrade"),
            (Record(member, 1, "FailedUpgrade"),),
        )
    wanted = requested(view)
    installed = ", ".join(versions) or "none in the bundle"
    texts = {r.text.strip(): r for r in view.log}
    if wanted is not None:
        version = wanted[0]
        shown = f"goal state asks {HANDLER} {version} ({wanted[1]}); installed: {installed}"
        if version in versions or wanted[1] != "enabled":
            return Found(CheckResult.ok(check, shown))
        failures = download_failures_in(list(texts), version)
    else:
        shown = f"installed: {installed} (no goal state in the bundle names {HANDLER})"
        named = {m.group(1) for r in view.log for m in [_HANDLER_LINE.search(r.text)] if m}
        failures = [
            line
            for version in sorted(named - set(versions))
            for line in download_failures_in(list(texts), version)
        ]
        if not view.log:
            return _no_agent_log(check)
    if not failures:
        return Found(CheckResult.ok(check, shown))
    lines = tuple(texts[line] for line in failures[-3:] if line in texts)
    return Found(CheckResult.fail(check, f"{shown}; waagent.log: {one_line(failures[-1])}"), lines)


def extension_status(view: BundleView) -> Found:
    """The newest settings' status file, judged as the in-guest check judges it; the
    settings' age is the collection time minus the file's time in the zip, on Azure's
    clock (a bundle does not say a lab's time scale)."""
    check = "guest.extension_status"
    versions = view.handler_versions()
    if not versions:
        return Found(CheckResult.ok(check, f"{HANDLER}: no handler files, no status expected"))
    version = _current(view, versions)
    settings = view.bundle.glob(view.handler_file(version, "config/*.settings"))
    seqs = sorted(
        int(name.rsplit("/", 1)[-1].split(".")[0])
        for name in settings
        if name.rsplit("/", 1)[-1].split(".")[0].isdigit()
    )
    status_file = view.handler_file(version, "config/HandlerStatus")
    agent_view = AgentView.parse(view.bundle.read_text(status_file))
    if not seqs:
        return Found(CheckResult.ok(check, f"{HANDLER}-{version}: no settings yet"))
    seq = seqs[-1]
    settings_file = view.handler_file(version, f"config/{seq}.settings")
    written = view.bundle.mtime(settings_file)
    if view.collected_at is not None and written is not None:
        age = (view.collected_at - written).total_seconds()
    else:
        age = 0.0
    status_member = view.handler_file(version, f"status/{seq}.status")
    status_text = view.bundle.read_text(status_member)
    facts = GuestFacts("", 0, SNAPSHOT_SUBTASK_TIMEOUT.azure_seconds, 1.0)
    result = judge_extension_status(seq, age, parse_status(status_text), agent_view, facts)
    lines = (Record(status_member, 1, one_line(status_text or "(no status file)", 300)),)
    return Found(result, lines)


def storage_reachable(view: BundleView) -> Found:
    """Storage on the extension's path, as the extension itself last found it: its
    newest status file reports a snapshot that reached storage (success) or one that
    failed for want of a network (``...SnapshotFailedNoNetwork``). Any other status says
    nothing about the path, so the check does not observe it."""
    check = "guest.storage_reachable"
    newest = _newest_status(view)
    if isinstance(newest, _Missing):
        return _unobserved(check, newest.why)
    text = view.bundle.read_text(newest) or ""
    status = parse_status(text)
    record = Record(newest, 1, one_line(text, 300))
    if status is not None and _NO_NETWORK.search(f"{status[2]} {text}"):
        return Found(
            CheckResult.fail(
                check,
                f"the extension could not reach storage: {newest}: {status[0]}, "
                f"code {status[1]}: {status[2]}",
            ),
            (record,),
        )
    if status is not None and status[0] == "success":
        return Found(
            CheckResult.ok(check, f"{newest}: the extension's last snapshot reached storage")
        )
    return _unobserved(
        check, f"{newest}: {status[0] if status else 'unreadable'}; says nothing about storage"
    )


def memory(view: BundleView) -> Found:
    """The kernel's OOM killer in syslog, messages, kern.log or dmesg (when the bundle
    has them: journald-only images keep none on disk)."""
    check = "guest.memory"
    members = [m for pattern in KERNEL_LOGS for m in view.bundle.glob(pattern)]
    if not members:
        return _unobserved(check, "the bundle holds no kernel log (syslog, messages, dmesg)")
    kills = [
        Record(member, number, line)
        for member in members
        for number, line in enumerate(member_text(view.bundle, member).splitlines(), 1)
        if _OOM.search(line)
    ]
    if kills:
        return Found(
            CheckResult.fail(check, f"the kernel's OOM killer ran {len(kills)} time(s)"),
            tuple(kills[-3:]),
        )
    return Found(CheckResult.ok(check, f"no OOM kill in {', '.join(members)}"))


def prepost_scripts(view: BundleView) -> Found:
    """A pre/post script or plugin-host timeout in the newest status file (the script
    configuration in /etc/azure is not in a bundle, and neither is a script running now)."""
    check = "guest.prepost_scripts"
    newest = _newest_status(view)
    if isinstance(newest, _Missing):
        return _unobserved(check, newest.why)
    text = view.bundle.read_text(newest)
    timed_out = script_timeout_in(newest.rsplit("/", 1)[-1], text)
    record = Record(newest, 1, one_line(text or "", 300))
    if timed_out:
        return Found(CheckResult.fail(check, timed_out), (record,))
    status = parse_status(text)
    if status is not None and status[0] in ("success", "warning", "error"):
        return Found(CheckResult.ok(check, f"{newest}: {status[0]}, code {status[1]}"), (record,))
    return _unobserved(
        check,
        f"{newest}: {status[0] if status else 'unreadable'}; "
        "a script still running is not in a bundle",
    )


BundleObserver = Callable[[BundleView], Found]

BUNDLE_CHECKS: dict[str, BundleObserver] = {
    "guest.agent_version": agent_version,
    "guest.agent_running": agent_running,
    "guest.waagent_conf": waagent_conf,
    "guest.agent_proxy": agent_proxy,
    "guest.dhcp": dhcp,
    "guest.storage_reachable": storage_reachable,
    "guest.handler_files": handler_files,
    "guest.extension_package": extension_package,
    "guest.extension_status": extension_status,
    "guest.memory": memory,
    "guest.prepost_scripts": prepost_scripts,
}

_PLATFORM = "the platform's view (Azure SDK, backup jobs, NSG), not in the guest's files"
CANNOT_RUN: dict[str, str] = {
    "guest.agent_restart_policy": "systemd's unit files and Restart= are not in a bundle",
    "guest.wireserver": "needs a request from the VM to the WireServer",
    "guest.cpu_load": "needs CPU samples taken on the running VM",
    **{check.id: _PLATFORM for check in ALL_CHECKS if check.id.startswith("platform.")},
}


def run_bundle_checks(bundle: Bundle) -> dict[str, Found]:
    """Every check that can work from files, by id, in the registry's order; an error
    while judging becomes "not observed", as in the registry."""
    view = BundleView.of(bundle)
    found: dict[str, Found] = {}
    for check in ALL_CHECKS:
        observe = BUNDLE_CHECKS.get(check.id)
        if observe is None:
            continue
        try:
            found[check.id] = observe(view)
        except Exception as exc:  # the boundary: one bad file must not hide the rest
            found[check.id] = _unobserved(check.id, f"{type(exc).__name__}: {exc}")
    return found


@dataclass(frozen=True)
class _Missing:
    why: str


def _newest_status(view: BundleView) -> str | _Missing:
    """The newest status file of the handler version the goal state asks for, or why the
    bundle has none."""
    versions = view.handler_versions()
    if not versions:
        return _Missing(f"the bundle holds no {HANDLER} status files")
    version = _current(view, versions)
    statuses = view.bundle.glob(view.handler_file(version, "status/*.status"))
    if not statuses:
        return _Missing(f"{HANDLER}-{version}: no status file in the bundle")
    return max(statuses, key=lambda n: view.bundle.mtime(n) or datetime.min)
