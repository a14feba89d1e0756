"""``snaplab case import``: a log bundle (the agent's ``waagent -collect-logs`` zip, from the
lab or from a customer) read into a case file, every field with the line it came from.

What a bundle says, and where (``evidence`` keeps ``path:line: text`` for each field):

* the agent version: the agent's own lines in ``var/log/waagent.log``; a version the lab
  has no image for is built as the nearest lab version at or below it
  (``observed.agent`` keeps the real one);
* the distribution: ``etc/os-release``;
* ``waagent.conf`` settings that differ from the file that agent version ships
  (:mod:`lab.bundle.conf_defaults`); ``HttpProxy.*`` become ``proxy`` (``where: agent``),
  ``http_proxy`` in ``etc/environment`` (when a bundle holds it) ``where: system``;
* extension handlers: ``config/HandlerState`` and the newest ``status/<seq>.status`` code;
* the WireServer address the agent used, whether a DHCP lease is there, the last
  goal-state incarnation, and every error the logs show (``observed``);
* ``faults``: the causes the bundle diagnosis (:func:`lab.bundle.diagnose.diagnose_bundle`)
  names, with the settings that say the same thing (``agent_service: stopped`` for
  agent-stopped, ``dhcp: false`` for dhcp-disabled, ...), so ``case up`` of the case fails
  the same way.

Only the bundle's files are read: nothing here knows the lab's faults or scenarios, and a
customer's bundle imports as a lab's does (a lab image's own ``waagent.conf`` changes are
recognised by the marker the lab writes into that file, not by anything outside it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lab.bundle.agentlog import Record, agent_records, errors, records
from lab.bundle.conf_defaults import defaults_for, nearest_version, parse_conf
from lab.bundle.diagnose import BundleDiagnosis, diagnose_bundle
from lab.bundle.reader import Bundle, open_bundle
from lab.cases.model import (
    CASE_NAME_PATTERN,
    FORMAT,
    PROXY_URL_PATTERN,
    Case,
)
from lab.cases.redact import RedactionReport, redact_case
from lab.errors import BadInput
from lab.provision.images import AGENT_FLAVORS

VM = "vm1"
LOC = "vms[0]"
CONF = "etc/waagent.conf"
OS_RELEASE = "etc/os-release"
ENVIRONMENT = "etc/environment"
HOSTNAME = "etc/hostname"
LIB = "var/lib/waagent"
LEASES = ("var/lib/dhcp/dhclient.eth0.leases", "var/lib/dhclient/dhclient-eth0.leases")
LAB_MARKER = "# ---- lab changes (snaplab) ----"
LAB_REASON = "# snaplab: "
PROXY_KEYS = ("HttpProxy.Host", "HttpProxy.Port")
MAX_ERROR_TEXT = 500

_GOAL_AGENT = re.compile(
    r"(?:WALinuxAgent-(\d[\d.]*) running as process"
    r"|Agent WALinuxAgent-(\d[\d.]*) is running as the goal state agent"
    r"|Goal State Agent version (\d[\d.]*))"
)
_INSTALLED = re.compile(r"Azure Linux Agent Version:\s*(\d[\d.]*)")
_WIRESERVER = re.compile(r"Wire server endpoint:\s*(\d{1,3}(?:\.\d{1,3}){3})")
_INCARNATION = re.compile(r"[Ii]ncarnation[:\s]+(\d+)")
_HISTORY = re.compile(r"_incarnation_(\d+)|__(\d+)\.zip$|__(\d+)/")
_HANDLER_DIR = re.compile(
    r"^var/lib/waagent/([A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z0-9]+)+)-(\d+(?:\.\d+){1,3})/"
)
_EXT_ERROR = re.compile(r"\bERROR\b|\bError:|\bFailed\b|\bfailed with\b")
_SYSTEM_PROXY = re.compile(r"^\s*(?:export\s+)?(?:http_proxy|HTTP_PROXY)\s*=\s*[\"']?([^\"'\s]+)")

HANDLER_STATES = {
    "enabled": "enabled",
    "installed": "enabled",
    "disabled": "enabled",
    "notinstalled": "not-installed",
    "failedupgrade": "update-failed",
}
# A cause the diagnosis names, and the setting of the case that says the same thing.
CAUSE_SETTINGS: dict[str, tuple[str, Any]] = {
    "agent-stopped": ("agent_service", "stopped"),
    "stale-agent": ("agent_service", "crashed"),
    "dhcp-disabled": ("dhcp", False),
    "guest-shutdown": ("power", "shut-down-inside"),
    "cpu-saturation": ("load.cpu_busy", True),
    "prescript-hang": ("prepost_script.hangs", True),
}
CRASHABLE = ("2.2.47",)  # the agents whose unit the lab can leave without a restart policy


@dataclass(frozen=True)
class Imported:
    case: Case
    diagnosis: BundleDiagnosis
    report: RedactionReport | None  # None when not redacted


def import_bundle(
    path: Path, redact: bool = True, name: str | None = None, now: datetime | None = None
) -> Imported:
    """Read ``path`` (a bundle) into a case; ``redact`` replaces the customer's names,
    addresses and secrets (:mod:`lab.cases.redact`)."""
    bundle = open_bundle(path)
    diagnosis = diagnose_bundle(bundle)
    case_name = name or (slug(path.stem) if not redact else "imported-case")
    found = case_from_bundle(bundle, diagnosis, case_name, now or datetime.now(UTC))
    if not redact:
        return Imported(found, diagnosis, None)
    hosts = [(bundle.read_text(HOSTNAME) or "").strip()]
    redacted, report = redact_case(found, hosts=[h for h in hosts if h])
    return Imported(redacted, diagnosis, report)


def slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    slug = re.sub(r"^[^a-z]+", "", slug)[:63].rstrip("-")
    return slug if re.fullmatch(CASE_NAME_PATTERN, slug) else "imported-case"


class _Case:
    """The case being assembled, as plain data, with its evidence."""

    def __init__(self) -> None:
        self.vm: dict[str, Any] = {"name": VM}
        self.evidence: dict[str, str] = {}

    def note(self, field: str, where: Record | str) -> None:
        self.evidence[field] = _one_line(str(where))


def case_from_bundle(bundle: Bundle, diagnosis: BundleDiagnosis, name: str, now: datetime) -> Case:
    """The case a bundle shows (see the module's docstring)."""
    if not bundle.has("var/log/waagent.log"):
        raise BadInput(f"{bundle.describe()}: no var/log/waagent.log (not an agent log bundle?)")
    log = agent_records(bundle)
    draft = _Case()
    real_version = _agent(bundle, log, draft)
    observed: dict[str, Any] = {"agent": real_version}
    _distro(bundle, observed, draft)
    _conf(bundle, real_version, draft)
    _system_proxy(bundle, draft)
    _extensions(bundle, draft)
    _wireserver(log, observed, draft)
    _lease(bundle, diagnosis, observed, draft)
    _incarnation(bundle, log, observed, draft)
    observed["errors"] = _errors(bundle)
    faults = _faults(diagnosis, draft)
    data: dict[str, Any] = {
        "format": FORMAT,
        "name": name,
        "source": {
            "bundle": bundle.path.name,
            "imported_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "vms": [draft.vm],
        "faults": faults,
        "observed": observed,
        "evidence": draft.evidence,
    }
    try:
        return Case.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise BadInput(
            f"{bundle.describe()}: the bundle's {where} cannot go into a case: {error['msg']}"
        ) from None


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 3] + "..."


def _agent(bundle: Bundle, log: list[Record], draft: _Case) -> str:
    goal = next((r for r in reversed(log) if _GOAL_AGENT.search(r.text)), None)
    installed = next((r for r in reversed(log) if _INSTALLED.search(r.text)), None)
    record = goal or installed
    if record is None:
        raise BadInput(f"{bundle.describe()}: var/log/waagent.log names no agent version")
    match = (_GOAL_AGENT if record is goal else _INSTALLED).search(record.text)
    assert match is not None
    version = next(group for group in match.groups() if group)
    lab_version = version if version in AGENT_FLAVORS else nearest_version(version)
    draft.vm["agent"] = lab_version
    if lab_version == version:
        draft.note(f"{LOC}.agent", record)
    else:
        draft.note(f"{LOC}.agent", f"{record} (no lab image of {version}: built as {lab_version})")
    return version


def _distro(bundle: Bundle, observed: dict[str, Any], draft: _Case) -> None:
    for number, line in bundle.lines(OS_RELEASE):
        if line.startswith("PRETTY_NAME="):
            observed["distro"] = line.split("=", 1)[1].strip().strip('"') or None
            draft.note("observed.distro", f"{OS_RELEASE}:{number}: {line}")
            return


def _conf(bundle: Bundle, version: str, draft: _Case) -> None:
    text = bundle.read_text(CONF)
    if text is None:
        return
    defaults = defaults_for(nearest_version(version))
    lines = text.splitlines()
    lab_section = next((i for i, line in enumerate(lines) if line.strip() == LAB_MARKER), None)
    settings: dict[str, tuple[int, str]] = {}
    for item in parse_conf(text):
        settings[item.key] = (item.line, item.value)
    differ: dict[str, str] = {}
    for key, (number, value) in sorted(settings.items()):
        if key in PROXY_KEYS:
            continue
        if defaults.shipped.get(key) == value:
            continue
        in_lab_part = lab_section is not None and number - 1 > lab_section
        reason = lines[number - 2] if number >= 2 else ""
        if in_lab_part and reason.startswith(LAB_REASON) and defaults.lab.get(key) == value:
            continue  # the lab image's own change, which its file marks as such
        differ[key] = value
        draft.note(f"{LOC}.waagent_conf.{key}", f"{CONF}:{number}: {lines[number - 1]}")
    if differ:
        draft.vm["waagent_conf"] = differ
    host = settings.get("HttpProxy.Host")
    if host is not None and host[1] and host[1] != "None":
        port = settings.get("HttpProxy.Port")
        url = f"http://{host[1]}" + (f":{port[1]}" if port and port[1] not in ("", "None") else "")
        if re.fullmatch(PROXY_URL_PATTERN, url):
            draft.vm["proxy"] = {"http": url, "where": "agent"}
            draft.note(f"{LOC}.proxy", f"{CONF}:{host[0]}: HttpProxy.Host={host[1]}")


def _system_proxy(bundle: Bundle, draft: _Case) -> None:
    if "proxy" in draft.vm:
        return
    for number, line in bundle.lines(ENVIRONMENT):
        match = _SYSTEM_PROXY.match(line)
        if match and re.fullmatch(PROXY_URL_PATTERN, match.group(1)):
            draft.vm["proxy"] = {"http": match.group(1), "where": "system"}
            draft.note(f"{LOC}.proxy", f"{ENVIRONMENT}:{number}: {line}")
            return


def _extensions(bundle: Bundle, draft: _Case) -> None:
    newest: dict[str, tuple[tuple[int, ...], str]] = {}
    for member in bundle.files():
        match = _HANDLER_DIR.match(member)
        if match:
            key = tuple(int(p) for p in match.group(2).split("."))
            kind = match.group(1)
            if kind not in newest or key > newest[kind][0]:
                newest[kind] = (key, match.group(2))
    out = []
    for index, (kind, (_, version)) in enumerate(sorted(newest.items())):
        base = f"{LIB}/{kind}-{version}"
        entry: dict[str, Any] = {"type": kind, "version": version}
        loc = f"{LOC}.extensions[{index}]"
        state_lines = bundle.lines(f"{base}/config/HandlerState")
        if state_lines:
            number, state = state_lines[0]
            entry["handler_state"] = HANDLER_STATES.get(state.strip().lower(), "failed")
            draft.note(f"{loc}.handler_state", f"{base}/config/HandlerState:{number}: {state}")
        code = _status_code(bundle, base)
        if code is not None:
            entry["status_code"] = code[0]
            draft.note(f"{loc}.status_code", code[1])
        out.append(entry)
    if out:
        draft.vm["extensions"] = out


def _status_code(bundle: Bundle, base: str) -> tuple[int, str] | None:
    statuses = []
    for member in bundle.glob(f"{base}/status/*.status"):
        seq = member.rsplit("/", 1)[-1].split(".")[0]
        if seq.isdigit():
            statuses.append((int(seq), member))
    for _, member in sorted(statuses, reverse=True):
        try:
            data = json.loads(bundle.read_text(member) or "")
            status = data[0]["status"]
            code = int(status["code"])
        except (ValueError, KeyError, IndexError, TypeError):
            continue
        return code, f"{member}:1: status {status.get('status')!s}, code {code}"
    return None


def _wireserver(log: list[Record], observed: dict[str, Any], draft: _Case) -> None:
    record = next((r for r in reversed(log) if _WIRESERVER.search(r.text)), None)
    if record is not None:
        match = _WIRESERVER.search(record.text)
        assert match is not None
        observed["wireserver"] = match.group(1)
        draft.note("observed.wireserver", record)


def _lease(
    bundle: Bundle, diagnosis: BundleDiagnosis, observed: dict[str, Any], draft: _Case
) -> None:
    for lease in LEASES:
        text = bundle.read_text(lease)
        if text is not None:
            observed["dhcp_lease"] = bool(text.strip())
            draft.note("observed.dhcp_lease", f"{lease}:1: {len(text.splitlines())} line(s)")
            break
    check = next((c for c in diagnosis.checks if c.id == "guest.dhcp"), None)
    if check is not None and check.passed is False and check.observed:
        draft.vm["dhcp"] = False
        observed["dhcp_lease"] = False
        draft.note(f"{LOC}.dhcp", f"guest.dhcp: {check.detail}")


def _incarnation(bundle: Bundle, log: list[Record], observed: dict[str, Any], draft: _Case) -> None:
    for number, line in bundle.lines(f"{LIB}/Incarnation"):
        if line.strip().isdigit():
            observed["incarnation"] = int(line.strip())
            draft.note("observed.incarnation", f"{LIB}/Incarnation:{number}: {line.strip()}")
            return
    found: list[tuple[int, str]] = []
    for member in bundle.glob(f"{LIB}/GoalState.*.xml"):
        seq = member.rsplit(".", 2)[-2]
        if seq.isdigit():
            found.append((int(seq), f"{member}:1: {member.rsplit('/', 1)[-1]}"))
    for member in bundle.glob(f"{LIB}/history/*"):
        match = _HISTORY.search(member)
        if match:
            seq = next(group for group in match.groups() if group)
            found.append((int(seq), f"{member}:1: {member.rsplit('/', 1)[-1]}"))
    if found:
        newest, where = max(found)
        observed["incarnation"] = newest
        draft.note("observed.incarnation", where)
        return
    record = next((r for r in reversed(log) if _INCARNATION.search(r.text)), None)
    if record is not None:
        match = _INCARNATION.search(record.text)
        assert match is not None
        observed["incarnation"] = int(match.group(1))
        draft.note("observed.incarnation", record)


def _errors(bundle: Bundle) -> list[dict[str, Any]]:
    """The agent's error and warning records (benign noise left out), then error lines
    of the extensions' logs, oldest first within each."""
    found = [(r.path, r.line, r.text) for r in errors(bundle)]
    for member in bundle.glob("var/log/azure/**/*"):
        if member.endswith((".gz", ".zip", ".status", ".settings")):
            continue
        logged = records(bundle, member)
        if logged:
            found.extend((r.path, r.line, r.text) for r in logged if _EXT_ERROR.search(r.text))
            continue
        for number, line in bundle.lines(member):
            if _EXT_ERROR.search(line):
                found.append((member, number, line))
    return [
        {"file": path, "line": line, "text": _one_line(text)}
        for path, line, text in found
        if text.strip()
    ]


def _faults(diagnosis: BundleDiagnosis, draft: _Case) -> list[dict[str, Any]]:
    out = []
    for index, cause in enumerate(diagnosis.causes):
        out.append({"fault": cause.id, "vm": VM})
        first = cause.evidence[0] if cause.evidence else "the bundle diagnosis"
        draft.note(f"faults[{index}]", f"diagnose --bundle: {cause.id}: {first}")
        setting = CAUSE_SETTINGS.get(cause.id)
        if setting is None:
            continue
        field, value = setting
        if field == "agent_service" and value == "crashed" and draft.vm["agent"] not in CRASHABLE:
            value = "stopped"
        target = draft.vm
        *parents, leaf = field.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
        draft.note(f"{LOC}.{field}", f"diagnose --bundle: {cause.id}: {first}")
    return out
