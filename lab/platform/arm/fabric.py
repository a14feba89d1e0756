"""The ARM twin's side of the fabric: what the guest agents last reported, each VM's
power state, and the changes the twin's container asks of the fabric (uninstalling an
extension, recording a power operation's outcome, reporting a guest OS that halted).

The twin reports what is observed, never configured, so the agent, OS and extension
statuses it shows come from the fabric's control API (``/control/v1``), i.e. what the
real agent last reported to our WireServer. The power state is the fabric's record
(:mod:`lab.platform.power_states`): the twin's power operations write their outcome, and
the host's watcher (:mod:`lab.platform.host_power`, in the same container) reports an
OS that halted, so a VM shut down from inside shows ``stopped``, as on Azure. Extensions
are the other writes, CRP's part: creating or updating one (and a Run Command) puts the
handler in the goal state with its settings and the next sequence number
(:mod:`lab.platform.control_extensions`), deleting one puts it in state ``uninstall``;
the real agent does the rest.
:class:`FabricClient` is the seam that keeps the twin testable without a lab;
:class:`HttpFabricClient` is the real one.

Runs inside the twin's container on Debian's Python: stdlib only, and nothing from
``lab`` outside :mod:`lab.platform`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

from lab.platform.roster import Roster


class FabricError(Exception):
    """The fabric's control API was unreachable or answered something we cannot read."""


@dataclass(frozen=True)
class AgentReport:
    """The guest agent as the fabric last saw it."""

    ready: bool
    version: str | None = None
    message: str = ""
    last_report: str | None = None


@dataclass(frozen=True)
class OsReport:
    """Host name and OS the agent put in its status (``guestOSInfo``)."""

    computer_name: str | None
    name: str | None
    version: str | None


@dataclass(frozen=True)
class ExtensionReport:
    """One extension handler and the status its last operation wrote."""

    name: str
    version: str | None = None
    handler_status: str | None = None
    status: str | None = None
    code: str | None = None
    message: str | None = None
    sequence_number: int | None = None  # the settings' seq the status answers


@dataclass(frozen=True)
class GoalStateHandler:
    """One handler in a VM's goal state: what the platform asked of the agent."""

    name: str
    version: str
    state: str  # enabled, disabled or uninstall
    seq_no: int
    public_settings: Mapping[str, object]


@dataclass(frozen=True)
class PublishedHandler:
    """A handler the fabric just enabled in a VM's goal state."""

    name: str
    version: str
    seq_no: int
    incarnation: str


@dataclass(frozen=True)
class FabricVm:
    """What the fabric knows about one guest from its agent's reports."""

    name: str
    agent: AgentReport
    os: OsReport | None = None
    extensions: tuple[ExtensionReport, ...] = ()
    power_state: str | None = None  # the fabric's record: "running" or "stopped"


class FabricClient(Protocol):
    """What the twin needs of the fabric's control API (``/control/v1``)."""

    def roster(self) -> Roster:
        """The lab roster; raises :class:`FabricError` when it cannot be read."""
        ...

    def vm(self, name: str) -> FabricVm | None:
        """One guest's reports, or None when the fabric has none for it."""
        ...

    def uninstall_extension(self, vm: str, handler: str) -> str | None:
        """Set ``handler`` to ``uninstall`` in ``vm``'s goal state; returns the new
        incarnation, or None when the goal state has no such handler. Raises
        :class:`FabricError` when the fabric does not answer sensibly."""
        ...

    def set_power_state(self, vm: str, state: str) -> None:
        """Record the platform's power state of ``vm`` (``running`` or ``stopped``).
        Raises :class:`FabricError` when the fabric does not take it."""
        ...

    def report_halt(self, vm: str) -> bool:
        """Report that ``vm``'s OS halted; True if the platform took it (False when its
        view of the VM is stale). Raises :class:`FabricError` when it does not answer."""
        ...

    def handler_versions(self, handler: str) -> tuple[str, ...] | None:
        """The versions the platform's manifest lists for ``handler``, oldest first;
        None when the platform publishes no such handler."""
        ...

    def goal_state_handlers(self, vm: str) -> tuple[GoalStateHandler, ...]:
        """The handlers in ``vm``'s goal state (raises :class:`FabricError`)."""
        ...

    def enable_handler(
        self,
        vm: str,
        handler: str,
        version: str,
        public: Mapping[str, object],
        protected: Mapping[str, object] | None,
    ) -> PublishedHandler:
        """Put ``handler`` at ``version`` in ``vm``'s goal state, enabled, with these
        settings and the next sequence number (raises :class:`FabricError`)."""
        ...


class HttpFabricClient:
    """:class:`FabricClient` over HTTP, with urllib so the twin needs no extra package."""

    def __init__(self, base_url: str, timeout: float = 5.0, token: str | None = None) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        # The lab's control token (lab.platform.control_auth), sent on every request.
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        # The fabric is a lab address; never send it through a proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def roster(self) -> Roster:
        text = self._get("/control/v1/roster")
        if text is None:
            raise FabricError("the fabric has no roster")
        try:
            return Roster.from_json(text)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise FabricError(f"the fabric's roster is not valid: {exc}") from exc

    def vm(self, name: str) -> FabricVm | None:
        text = self._get(f"/control/v1/vms/{quote(name, safe='')}")
        if text is None:
            return None
        try:
            return parse_fabric_vm(json.loads(text))
        except ValueError as exc:
            raise FabricError(f"the fabric's report for {name!r} is not valid: {exc}") from exc

    def uninstall_extension(self, vm: str, handler: str) -> str | None:
        path = (
            f"/control/v1/vms/{quote(vm, safe='')}/extensions/{quote(handler, safe='')}/uninstall"
        )
        text = self._request("POST", path)
        if text is None:
            return None
        try:
            answer = json.loads(text)
        except ValueError as exc:
            raise FabricError(f"the fabric's uninstall answer is not JSON: {exc}") from exc
        incarnation = answer.get("incarnation") if isinstance(answer, dict) else None
        if isinstance(incarnation, bool) or not isinstance(incarnation, str | int):
            raise FabricError("the fabric's uninstall answer has no incarnation")
        return str(incarnation)

    def set_power_state(self, vm: str, state: str) -> None:
        body = json.dumps({"power_state": state}).encode()
        if self._request("PUT", f"/control/v1/vms/{quote(vm, safe='')}/power", body) is None:
            raise FabricError(f"the fabric has no VM {vm!r} to set the power state of")

    def report_halt(self, vm: str) -> bool:
        text = self._request("POST", f"/control/v1/vms/{quote(vm, safe='')}/power/halted")
        if text is None:
            raise FabricError(f"the fabric has no VM {vm!r} to report a halt of")
        try:
            answer = json.loads(text)
        except ValueError as exc:
            raise FabricError(f"the fabric's halt answer is not JSON: {exc}") from exc
        taken = answer.get("taken") if isinstance(answer, dict) else None
        if not isinstance(taken, bool):
            raise FabricError("the fabric's halt answer does not say whether it was taken")
        return taken

    def handler_versions(self, handler: str) -> tuple[str, ...] | None:
        text = self._get(f"/control/v1/extensions/{quote(handler, safe='')}/versions")
        if text is None:
            return None
        try:
            listed = json.loads(text)["versions"]
            return tuple(str(v["version"]) for v in listed)
        except (ValueError, KeyError, TypeError) as exc:
            raise FabricError(f"the fabric's versions of {handler!r} are not valid: {exc}") from exc

    def published_packages(self, handler: str) -> tuple[tuple[str, str], ...] | None:
        """(version, package) of each version the manifest lists, oldest first; the
        package is ``ok``, ``corrupt`` or ``missing`` (the publisher's own knowledge).
        None when the platform publishes no such handler."""
        text = self._get(f"/control/v1/extensions/{quote(handler, safe='')}/versions")
        if text is None:
            return None
        try:
            listed = json.loads(text)["versions"]
            return tuple((str(v["version"]), str(v["package"])) for v in listed)
        except (ValueError, KeyError, TypeError) as exc:
            raise FabricError(f"the fabric's versions of {handler!r} are not valid: {exc}") from exc

    def withdraw_version(self, handler: str, version: str) -> bool:
        """Stop offering ``version`` (the publisher's rollback); False if not published."""
        path = (
            f"/control/v1/extensions/{quote(handler, safe='')}/versions/{quote(version, safe='')}"
        )
        return self._request("DELETE", path) is not None

    def goal_state_handlers(self, vm: str) -> tuple[GoalStateHandler, ...]:
        text = self._get(f"/control/v1/vms/{quote(vm, safe='')}/extensions")
        if text is None:
            raise FabricError(f"the fabric has no VM {vm!r}")
        try:
            return tuple(_parse_goal_state_handler(h) for h in json.loads(text)["handlers"])
        except (ValueError, KeyError, TypeError) as exc:
            raise FabricError(f"the fabric's handlers of {vm!r} are not valid: {exc}") from exc

    def enable_handler(
        self,
        vm: str,
        handler: str,
        version: str,
        public: Mapping[str, object],
        protected: Mapping[str, object] | None,
    ) -> PublishedHandler:
        body = json.dumps(
            {
                "version": version,
                "public_settings": dict(public),
                "protected_settings": None if protected is None else dict(protected),
            }
        ).encode()
        path = f"/control/v1/vms/{quote(vm, safe='')}/extensions/{quote(handler, safe='')}"
        text = self._request("PUT", path, body)
        if text is None:
            raise FabricError(f"the fabric has no VM {vm!r} or no handler {handler!r}")
        try:
            doc = json.loads(text)
            return PublishedHandler(
                name=str(doc["name"]),
                version=str(doc["version"]),
                seq_no=int(doc["seq_no"]),
                incarnation=str(doc["incarnation"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise FabricError(f"the fabric's answer to enabling {handler!r} is not valid") from exc

    def _get(self, path: str) -> str | None:
        return self._request("GET", path)

    def _request(self, method: str, path: str, payload: bytes | None = None) -> str | None:
        """The body of a 2xx answer, None for a 404; anything else is a FabricError."""
        url = self._base + path
        data = payload if payload is not None else (b"" if method == "POST" else None)
        request = urllib.request.Request(url, data=data, method=method, headers=self._headers)
        if payload is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                body: bytes = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise FabricError(f"{method} {url} answered HTTP {exc.code}") from exc
        except OSError as exc:  # URLError, timeouts, refused connections
            raise FabricError(f"{method} {url} failed: {exc}") from exc
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FabricError(f"{method} {url} answered non-UTF-8 text") from exc


# The names before the twin could also write; the twin's main still imports the reader.
FabricReader = FabricClient
HttpFabricReader = HttpFabricClient


def parse_fabric_vm(raw: object) -> FabricVm:
    """Read one VM document of the control API; raises ValueError on a wrong shape."""
    doc = _object(raw, "VM")
    name = _text(doc, "name")
    if not name:
        raise ValueError("VM has no name")
    agent = _object(_or(doc.get("agent"), {}), "agent")
    os_doc = doc.get("os")
    extensions = _or(doc.get("extensions"), [])
    if not isinstance(extensions, list):
        raise ValueError("extensions is not a list")
    return FabricVm(
        name=name,
        agent=AgentReport(
            ready=agent.get("status") == "Ready",
            version=_text(agent, "version"),
            message=_text(agent, "message") or "",
            last_report=_text(agent, "last_report"),
        ),
        os=None if os_doc is None else _parse_os(os_doc),
        extensions=tuple(e for e in map(_parse_extension, extensions) if e is not None),
        power_state=_text(doc, "power_state"),
    )


def _parse_os(raw: object) -> OsReport:
    doc = _object(raw, "os")
    return OsReport(
        computer_name=_text(doc, "computer_name"),
        name=_text(doc, "name"),
        version=_text(doc, "version"),
    )


def _parse_extension(raw: object) -> ExtensionReport | None:
    """One extension, or None for a nameless one (nothing in ARM could refer to it)."""
    doc = _object(raw, "extension")
    name = _text(doc, "name")
    if not name:
        return None
    return ExtensionReport(
        name=name,
        version=_text(doc, "version"),
        handler_status=_text(doc, "handler_status"),
        status=_text(doc, "status"),
        code=_text(doc, "code"),
        message=_text(doc, "message"),
        sequence_number=_int(doc, "sequence_number"),
    )


def _parse_goal_state_handler(raw: object) -> GoalStateHandler:
    doc = _object(raw, "handler")
    public = _or(doc.get("public_settings"), {})
    if not isinstance(public, dict):
        raise ValueError("public_settings is not an object")
    return GoalStateHandler(
        name=_text(doc, "name") or "",
        version=_text(doc, "version") or "",
        state=_text(doc, "state") or "enabled",
        seq_no=_int(doc, "seq_no") or 0,
        public_settings=public,
    )


def _int(doc: Mapping[str, object], key: str) -> int | None:
    """An integer field; None when absent, null or not a whole number."""
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _or(value: object, default: object) -> object:
    """``default`` for a missing or null field (unlike ``or``, keeps wrong-typed values)."""
    return default if value is None else value


def _object(raw: object, what: str) -> Mapping[str, object]:
    if not isinstance(raw, dict):
        raise ValueError(f"{what} is not a JSON object")
    return raw


def _text(doc: Mapping[str, object], key: str) -> str | None:
    """A scalar field as text (codes may come as numbers); None when absent or null."""
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{key} is not a scalar")
    return str(value)
