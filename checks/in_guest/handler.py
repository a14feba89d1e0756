"""The VMSnapshot handler on disk, as the agent installed it, and what it last reported.

Layout (the agent's, for every handler): ``/var/lib/waagent/<Publisher.Type>-<version>/``
with ``HandlerManifest.json`` (five commands), ``HandlerEnvironment.json``,
``config/<seq>.settings``, ``config/HandlerState``, ``config/HandlerStatus`` (the agent's
view of the handler) and ``status/<seq>.status`` (the extension's own report). The agent
keeps the package it unpacked (``<Publisher.Type>__<version>.zip``) beside it, which is
what a healthy install is compared with. The goal state the agent last fetched names the
version it must run (``ExtensionsConfig.<n>.xml``; from agent 2.8 under ``history/``).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from checks.context import GuestFacts
from checks.host import GuestHost, quote, read_file
from checks.in_motion import Settled, Window, watch
from checks.result import CheckResult, one_line
from checks.versions import parse
from lab.platform.timescale import (
    HANDLER_ENABLE_TIMEOUT,
    HANDLER_INSTALL_TIMEOUT,
    SNAPSHOT_SUBTASK_TIMEOUT,
)

HANDLER = "Microsoft.Azure.RecoveryServices.VMSnapshotLinux"
LIB = "/var/lib/waagent"
LOG = "/var/log/waagent.log"
COMMANDS = (
    "installCommand",
    "uninstallCommand",
    "updateCommand",
    "enableCommand",
    "disableCommand",
)
HEALTHY_STATES = ("Installed", "Enabled", "Disabled")
# waagent.log lines that mean the agent could not fetch or unpack a handler package.
DOWNLOAD_FAILURES = (
    "Failed to download artifacts",
    "Error downloading extension package",
    "Error while unzipping extension package",
    "Failed to download the extension package",
    "Failed to fetch manifest",
    "Failed to retrieve extension manifest",
    "Unable to find version",
)
_SETTINGS = re.compile(r"/config/(\d+)\.settings$")
# The agent writes HandlerState NotInstalled, downloads, unpacks and runs install (then
# Installed), runs enable (then Enabled): the two windows a handler in motion gets.
INSTALLING = Window(
    "the agent's download, unpack and install of the handler", HANDLER_INSTALL_TIMEOUT
)
ENABLING = Window("the agent's enable of the handler", HANDLER_ENABLE_TIMEOUT)


@dataclass(frozen=True)
class Requested:
    """What the newest goal state on disk asks of the VMSnapshot handler."""

    version: str
    state: str
    source: str


@dataclass(frozen=True)
class AgentView:
    """``config/HandlerStatus``: the agent's own view of the handler (``NotReady`` with a
    code when it could not run one of its commands)."""

    status: str
    code: str
    message: str

    @property
    def not_ready(self) -> bool:
        return self.status == "NotReady"

    @classmethod
    def parse(cls, text: str | None) -> AgentView | None:
        data: Any = _json(text) if text else None
        if not isinstance(data, dict):
            return None
        return cls(
            str(data.get("status")),
            str(data.get("code") or 0),
            one_line(str(data.get("message", ""))),
        )

    def describe(self) -> str:
        shown = f"; agent's HandlerStatus {self.status}"
        return shown + (f" (code {self.code}: {self.message})" if self.code != "0" else "")


@dataclass(frozen=True)
class HandlerDirs:
    requested: Requested | None
    versions: tuple[str, ...]  # installed handler directories, oldest first

    def directory(self, version: str) -> str:
        return f"{LIB}/{HANDLER}-{version}"

    @property
    def current(self) -> str | None:
        """The directory that should be in use: the requested version when it exists,
        else the newest present."""
        if self.requested is not None and self.requested.version in self.versions:
            return self.requested.version
        return self.versions[-1] if self.versions else None


def requested_handler(host: GuestHost) -> Requested | None:
    newest = host.run(
        f"ls -1t {LIB}/ExtensionsConfig.*.xml {LIB}/history/*/ExtensionsConfig*.xml "
        "2>/dev/null | head -n 1"
    ).stdout.strip()
    if not newest:
        return None
    text = read_file(host, newest)
    if not text:
        return None
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None
    for plugin in root.iter("Plugin"):
        if plugin.get("name") == HANDLER and plugin.get("version") and plugin.get("state"):
            return Requested(str(plugin.get("version")), str(plugin.get("state")), newest)
    return None


def handler_dirs(host: GuestHost) -> HandlerDirs:
    out = host.run(f"ls -1d {LIB}/{HANDLER}-*/ 2>/dev/null")
    versions = []
    for line in out.stdout.splitlines():
        version = line.rstrip("/").rsplit("-", 1)[-1]
        if parse(version) is not None:
            versions.append(version)
    ordered = tuple(sorted(versions, key=lambda v: parse(v) or ()))
    return HandlerDirs(requested_handler(host), ordered)


@dataclass(frozen=True)
class Progress:
    """One look at a handler the agent may be working on."""

    state: str  # config/HandlerState ("" before the agent wrote one)
    age: int  # seconds since the agent last wrote it (or made the directory)
    agent_working: bool  # the agent's extension-handler process runs
    agent_gave_up: bool  # config/HandlerStatus carries the code of a failed command

    def window(self) -> Window | None:
        if self.state in ("", "NotInstalled"):
            return INSTALLING
        return ENABLING if self.state == "Installed" else None


def handler_progress(host: GuestHost, base: str) -> Progress | None:
    """HandlerState, its age by the guest's clock, and whether the agent is at work."""
    out = host.run(
        f"d={quote(base)}; f=$d/config/HandlerState; now=$(date +%s); "
        'if [ -f "$f" ]; then t=$(stat -c %Y "$f"); s=$(cat "$f"); '
        'else t=$(stat -c %Y "$d" 2>/dev/null || echo "$now"); s=; fi; '
        "echo \"handler-progress|$s|$((now - t))|$(pgrep -c -f '[-]run-exthandlers')\""
    )
    fields = out.stdout.strip().split("|")
    if len(fields) != 4 or fields[0] != "handler-progress":
        return None
    _, state, age, workers = (field.strip() for field in fields)
    view = AgentView.parse(read_file(host, f"{base}/config/HandlerStatus"))
    return Progress(
        state=state,
        age=int(age) if age.lstrip("-").isdigit() else 0,
        agent_working=workers.isdigit() and int(workers) > 0,
        agent_gave_up=view is not None and view.not_ready and view.code != "0",
    )


def wait_for_handler(
    host: GuestHost, facts: GuestFacts, dirs: HandlerDirs
) -> Settled[Progress | None]:
    """Watch a handler the goal state asks to be enabled while the agent installs and
    enables it: it settles when Enabled (or the agent gives up, or stops running); it is
    stuck when it stays NotInstalled past the agent's install limit (900 s on Azure's
    clock) or Installed past its enable limit (300 s), both scaled by the lab's clock."""
    version = dirs.current
    if version is None or dirs.requested is None or dirs.requested.state != "enabled":
        return Settled(None, 0.0, moving=False)
    base = dirs.directory(version)
    scale = facts.time_scale

    def remaining(progress: Progress | None) -> float | None:
        if progress is None or progress.agent_gave_up or not progress.agent_working:
            return None  # nothing is moving: judge what is there
        window = progress.window()
        return None if window is None else window.seconds(scale) - progress.age

    limit = INSTALLING.seconds(scale) + ENABLING.seconds(scale)
    return watch(lambda: handler_progress(host, base), remaining, limit)


def _progress_note(settled: Settled[Progress | None], scale: float) -> str:
    """What the detail says about a handler that was, or still is, in motion."""
    progress = settled.value
    if progress is None:
        return ""
    window = progress.window()
    if window is None:
        if settled.waited > 0:
            return f" (waited {settled.waited:.0f} s while the agent installed and enabled it)"
        return ""
    if progress.agent_gave_up:
        return " (the agent gave up on it: see config/HandlerStatus)"
    if not progress.agent_working:
        return " (no waagent -run-exthandlers process: nothing is installing it)"
    return (
        f" ({progress.state or 'no HandlerState'} for {progress.age} s: {window.describe(scale)})"
    )


def handler_files(host: GuestHost, facts: GuestFacts) -> CheckResult:
    """The handler in use is intact: valid manifest with five commands, each script
    present, executable, with a shebang, syntactically valid, and identical to the
    package the agent unpacked; HandlerEnvironment.json readable; a sane HandlerState.

    A handler the agent is still downloading, installing or enabling is not judged
    half-made: the check watches it (:func:`wait_for_handler`) and looks at the files
    once it settles. Only a handler stuck past the agent's own install (900 s) or enable
    (300 s) limit, scaled like every Azure duration, is judged as it stands."""
    check = "guest.handler_files"
    dirs = handler_dirs(host)
    settled = wait_for_handler(host, facts, dirs)
    if settled.waited > 0:
        dirs = handler_dirs(host)  # the agent may have replaced or removed the directory
    waited = _progress_note(settled, facts.time_scale)
    version = dirs.current
    if version is None:
        return CheckResult.ok(check, f"{HANDLER} is not installed (the next backup installs it)")
    base = dirs.directory(version)
    problems: list[str] = []
    commands = _manifest_commands(read_file(host, f"{base}/HandlerManifest.json"), problems)
    for script in sorted({c.split()[0] for c in commands if c.split()}):
        problems.extend(_script_problems(host, base, script, version))
    problems.extend(_package_differences(host, base, version))
    env = read_file(host, f"{base}/HandlerEnvironment.json")
    if env is None or _json(env) is None:
        problems.append("HandlerEnvironment.json missing or not JSON")
    state = (read_file(host, f"{base}/config/HandlerState") or "").strip()
    if state and state not in HEALTHY_STATES:
        problems.append(f"HandlerState {state}")
    shown = f"{base}: HandlerState {state or 'none'}"
    if problems:
        return CheckResult.fail(check, f"{shown}; " + "; ".join(problems) + waited)
    return CheckResult.ok(
        check, f"{shown}; manifest and {len(set(commands))} command(s) intact{waited}"
    )


def extension_package(host: GuestHost, facts: GuestFacts) -> CheckResult:
    """The version the goal state asks for is installed, or the agent has not tried yet;
    fails when waagent.log shows it could not fetch or unpack that package, or a handler
    is left in ``FailedUpgrade``."""
    check = "guest.extension_package"
    dirs = handler_dirs(host)
    installed = ", ".join(dirs.versions) or "none"
    failed_upgrade = [
        v
        for v in dirs.versions
        if (read_file(host, f"{dirs.directory(v)}/config/HandlerState") or "").strip()
        == "FailedUpgrade"
    ]
    if failed_upgrade:
        return CheckResult.fail(
            check, f"{HANDLER} {', '.join(failed_upgrade)}: HandlerState FailedUpgrade"
        )
    wanted = dirs.requested
    if wanted is None:
        return CheckResult.ok(check, f"no {HANDLER} in the goal state; installed: {installed}")
    shown = f"goal state asks {HANDLER} {wanted.version} ({wanted.state}); installed: {installed}"
    has_manifest = (
        wanted.version in dirs.versions
        and host.run(f"test -f {quote(dirs.directory(wanted.version))}/HandlerManifest.json").rc
        == 0
    )
    if wanted.state != "enabled" or has_manifest:
        return CheckResult.ok(check, shown)
    failures = _download_failures(host, wanted.version)
    if not failures:
        return CheckResult.ok(check, f"{shown}; the agent has not tried to install it yet")
    return CheckResult.fail(check, f"{shown}; waagent.log: {failures[-1]}")


def extension_status(host: GuestHost, facts: GuestFacts) -> CheckResult:
    """The handler's newest status file answers its newest settings with a terminal,
    successful status.

    ``transitioning`` (or no status file yet) is a snapshot under way, not a fault, while
    its settings are younger than the snapshot sub-task timeout (95 min on Azure's clock,
    scaled): the platform waits that long for it too. The check does not wait; it judges
    the age by the guest's clock, and the agent refusing the handler (``HandlerStatus``
    NotReady) fails it at once."""
    check = "guest.extension_status"
    dirs = handler_dirs(host)
    version = dirs.current
    if version is None:
        return CheckResult.ok(check, f"{HANDLER} is not installed: no status expected")
    base = dirs.directory(version)
    listing = host.run(f"ls -1 {quote(base)}/config/*.settings 2>/dev/null").stdout
    seqs = sorted(int(m.group(1)) for m in map(_SETTINGS.search, listing.splitlines()) if m)
    agent_view = AgentView.parse(read_file(host, f"{base}/config/HandlerStatus"))
    handler = agent_view.describe() if agent_view else ""
    if not seqs:
        return CheckResult.ok(check, f"{base}: no settings yet{handler}")
    seq = seqs[-1]
    ages = host.run(
        f"echo $(( $(date +%s) - $(stat -c %Y {quote(base)}/config/{seq}.settings) ))"
    ).stdout.strip()
    age = int(ages) if ages.lstrip("-").isdigit() else 0
    status = parse_status(read_file(host, f"{base}/status/{seq}.status"))
    return judge_extension_status(seq, age, status, agent_view, facts)


def judge_extension_status(
    seq: int,
    age: float,
    status: tuple[str, str, str] | None,
    agent_view: AgentView | None,
    facts: GuestFacts,
) -> CheckResult:
    """The newest settings' status (``parse_status``), ``age`` seconds after the settings
    were written, against the sub-task timeout; shared with the bundle's check."""
    check = "guest.extension_status"
    handler = agent_view.describe() if agent_view else ""
    refused = agent_view is not None and agent_view.not_ready
    age = int(age)
    within = age <= facts.subtask_timeout_seconds
    window = SNAPSHOT_SUBTASK_TIMEOUT.describe(facts.time_scale)
    if status is None:
        detail = f"sequence {seq}: no status file {age} s after its settings{handler}"
        if within and not refused:
            return CheckResult.ok(check, f"{detail} (within the sub-task timeout, {window})")
        return CheckResult.fail(check, detail)
    state, code, message = status
    detail = f"sequence {seq}: {state}, code {code}: {message}{handler}"
    if refused:
        return CheckResult.fail(check, detail)
    if state in ("success", "warning"):
        return CheckResult.ok(check, detail)
    if state == "transitioning" and within:
        return CheckResult.ok(check, f"{detail} ({age} s, within the sub-task timeout, {window})")
    if state == "transitioning":
        detail += (
            f" — still transitioning {age} s after its settings, past the sub-task "
            f"timeout ({window})"
        )
    return CheckResult.fail(check, detail)


def _manifest_commands(text: str | None, problems: list[str]) -> list[str]:
    if text is None:
        problems.append("HandlerManifest.json missing")
        return []
    data = _json(text)
    try:
        manifest = data[0]["handlerManifest"]
    except (TypeError, KeyError, IndexError):
        problems.append("HandlerManifest.json is not a valid handler manifest (JSON)")
        return []
    if not isinstance(manifest, dict):
        problems.append("HandlerManifest.json has no handlerManifest object")
        return []
    missing = [name for name in COMMANDS if not isinstance(manifest.get(name), str)]
    if missing:
        problems.append(f"HandlerManifest.json lacks {', '.join(missing)}")
    return [str(manifest[name]) for name in COMMANDS if isinstance(manifest.get(name), str)]


def _script_problems(host: GuestHost, base: str, script: str, version: str) -> list[str]:
    path = f"{base}/{script}"
    info = host.run(f"stat -c '%A' {quote(path)} 2>/dev/null && head -n 1 {quote(path)}")
    lines = info.stdout.splitlines()
    if info.rc != 0 or not lines:
        return [f"{script} missing"]
    problems = []
    if len(lines[0]) < 4 or lines[0][3] not in "xs":
        problems.append(f"{script} not executable ({lines[0]})")
    shebang = lines[1] if len(lines) > 1 else ""
    if not shebang.startswith("#!"):
        problems.append(f"{script} has no #! line (starts {shebang[:30]!r})")
    else:
        words = shebang[2:].split()
        if words and words[0].endswith("/env"):
            words = words[1:]
        interpreter = words[0].rsplit("/", 1)[-1] if words else ""
        if interpreter in ("sh", "bash", "dash"):
            syntax = host.run(f"{interpreter} -n {quote(path)} 2>&1")
            if syntax.rc != 0:
                first = syntax.stdout.strip().splitlines()[:1] or ["syntax error"]
                problems.append(f"{script} fails {interpreter} -n: {first[0]}")
    return problems


# Compares every file of the package the agent kept with what is installed; prints the
# names that differ or are missing (the HandlerManifest.json copy at the root is the agent's).
_COMPARE_PACKAGE = (
    "import hashlib,os,sys,zipfile\n"
    "z=zipfile.ZipFile(sys.argv[1])\n"
    "for n in z.namelist():\n"
    "    if n.endswith('/'): continue\n"
    "    p=os.path.join(sys.argv[2],n)\n"
    "    if not os.path.isfile(p): print('missing',n); continue\n"
    "    if hashlib.sha256(open(p,'rb').read()).digest()!=hashlib.sha256(z.read(n)).digest():\n"
    "        print('differs',n)\n"
)


def _package_differences(host: GuestHost, base: str, version: str) -> list[str]:
    """Files of the installed handler that are not what the agent unpacked."""
    package = f"{LIB}/{HANDLER}__{version}.zip"
    compare = host.run(
        f"test -f {quote(package)} && python3 -c {quote(_COMPARE_PACKAGE)} "
        f"{quote(package)} {quote(base)}"
    )
    if compare.rc != 0:
        return []
    found = [line.split(" ", 1) for line in compare.stdout.splitlines() if " " in line]
    if not found:
        return []
    names = ", ".join(f"{name} ({how})" for how, name in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    return [f"handler differs from the package the agent unpacked ({package}): {names}{more}"]


def _download_failures(host: GuestHost, version: str) -> list[str]:
    pattern = "|".join(DOWNLOAD_FAILURES)
    out = host.run(f"tail -n 5000 {LOG} 2>/dev/null | grep -E {quote(pattern)}")
    return download_failures_in(out.stdout.splitlines(), version)


def download_failures_in(lines: list[str], version: str) -> list[str]:
    """The waagent.log lines that say the agent could not fetch or unpack ``version`` of
    the handler (shared with the bundle's check)."""
    relevant = []
    for line in lines:
        if not any(failure in line for failure in DOWNLOAD_FAILURES):
            continue
        mentions_handler = HANDLER in line and (version in line or f"-{version}]" in line)
        unprefixed = "Error while unzipping extension package" in line
        if mentions_handler or unprefixed or (HANDLER in line and "manifest" in line.lower()):
            relevant.append(line.strip())
    return relevant


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def parse_status(text: str | None) -> tuple[str, str, str] | None:
    """``(status, code, message)`` of a handler's ``<seq>.status`` file (None: no file)."""
    data: Any = _json(text) if text else None
    try:
        status = data[0]["status"]
        message = (status.get("formattedMessage") or {}).get("message", "")
        return str(status.get("status")), str(status.get("code")), one_line(str(message))
    except (TypeError, KeyError, IndexError, AttributeError):
        return None if text is None else ("unreadable", "?", "status file is not valid JSON")
