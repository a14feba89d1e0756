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
from checks.result import CheckResult, one_line
from checks.versions import parse

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


def handler_files(host: GuestHost, facts: GuestFacts) -> CheckResult:
    """The handler in use is intact: valid manifest with five commands, each script
    present, executable, with a shebang, syntactically valid, and identical to the
    package the agent unpacked; HandlerEnvironment.json readable; a sane HandlerState."""
    check = "guest.handler_files"
    dirs = handler_dirs(host)
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
        return CheckResult.fail(check, f"{shown}; " + "; ".join(problems))
    return CheckResult.ok(check, f"{shown}; manifest and {len(set(commands))} command(s) intact")


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
    successful status (``transitioning`` is fine while younger than the sub-task timeout)."""
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
    refused = agent_view is not None and agent_view.not_ready
    if not seqs:
        return CheckResult.ok(check, f"{base}: no settings yet{handler}")
    seq = seqs[-1]
    ages = host.run(
        f"echo $(( $(date +%s) - $(stat -c %Y {quote(base)}/config/{seq}.settings) ))"
    ).stdout.strip()
    age = int(ages) if ages.lstrip("-").isdigit() else 0
    status = _status(read_file(host, f"{base}/status/{seq}.status"))
    if status is None:
        detail = f"sequence {seq}: no status file {age} s after its settings{handler}"
        if age <= facts.subtask_timeout_seconds and not refused:
            return CheckResult.ok(check, f"{detail} (still within the sub-task timeout)")
        return CheckResult.fail(check, detail)
    state, code, message = status
    detail = f"sequence {seq}: {state}, code {code}: {message}{handler}"
    if refused:
        return CheckResult.fail(check, detail)
    if state in ("success", "warning"):
        return CheckResult.ok(check, detail)
    if state == "transitioning" and age <= facts.subtask_timeout_seconds:
        return CheckResult.ok(check, f"{detail} ({age} s, within the sub-task timeout)")
    if state == "transitioning":
        detail += f" — still transitioning {age} s after its settings"
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
    relevant = []
    for line in out.stdout.splitlines():
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


def _status(text: str | None) -> tuple[str, str, str] | None:
    data: Any = _json(text) if text else None
    try:
        status = data[0]["status"]
        message = (status.get("formattedMessage") or {}).get("message", "")
        return str(status.get("status")), str(status.get("code")), one_line(str(message))
    except (TypeError, KeyError, IndexError, AttributeError):
        return None if text is None else ("unreadable", "?", "status file is not valid JSON")
