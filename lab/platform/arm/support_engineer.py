"""Microsoft's side of a support case about the backup extension: what the engineer
decides from the ticket's words and the publisher's own knowledge of its packages.

A customer whose VMSnapshotLinux update fails cannot fix a damaged release; they open a
case naming the extension, the version and the agent's error, and Microsoft checks that
version's package and, if it is damaged, rolls the release back. The lab's platform
plays that part: it reads only what the ticket says (its description, and the VM its
``technicalTicketDetails.resourceId`` names) and what the publisher knows (the versions
its manifest lists and whether each package is whole, from the fabric's artifact
store), never how the lab broke the VM. The answer is Microsoft's communication in the
ticket, and whether the case is closed.

Runs inside the twin's container on Debian's Python: stdlib only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from lab.platform.arm.fabric import FabricError

HANDLER = "Microsoft.Azure.RecoveryServices.VMSnapshotLinux"
EXTENSION = "VMSnapshotLinux"
WHOLE = "ok"
SENDER = "Microsoft Azure Support"
_SIGNATURE = "\n\nMicrosoft Azure Support"
_MENTIONS_EXTENSION = re.compile(r"(?<![\w])VMSnapshotLinux(?![\w])", re.IGNORECASE)
_VERSION = re.compile(r"(?<![\w.])\d+\.\d+\.\d+(?:\.\d+)?(?![\w]|\.\d)")


class Publisher(Protocol):
    """The extension publisher's view of its releases (the fabric's artifact store)."""

    def published_packages(self, handler: str) -> tuple[tuple[str, str], ...] | None:
        """(version, package) the manifest lists, oldest first; None if none."""
        ...

    def withdraw_version(self, handler: str, version: str) -> bool:
        """Roll ``version`` back; False if it is not published. Raises FabricError."""
        ...


@dataclass(frozen=True)
class Answer:
    """Microsoft's communication in the case, and whether it closes the case."""

    subject: str
    body: str
    close: bool
    withdrawn: tuple[str, ...] = ()


def named_versions(description: str) -> tuple[str, ...]:
    """The version numbers a description names, in order, once each."""
    seen: list[str] = []
    for match in _VERSION.finditer(description):
        if match.group() not in seen:
            seen.append(match.group())
    return tuple(seen)


def answer_case(title: str, description: str, vm: str | None, publisher: Publisher) -> Answer:
    """What Microsoft answers a case, after checking the packages it names.

    A damaged package of a version the description names is withdrawn and the case
    closed; anything else (no VM of the subscription, no VMSnapshotLinux, no version, a
    whole package, a version not offered) gets an answer that finds no defect and
    leaves the case open for the customer.
    """
    subject = f"RE: {title}"
    if vm is None:
        return _no_defect(
            subject,
            "The request does not name a virtual machine of this subscription in its "
            "resource. Please tell us the affected VM so we can look at its backup "
            "extension.",
        )
    if not _MENTIONS_EXTENSION.search(description):
        return _no_defect(
            subject,
            f"We found no defect in a released extension for {vm}. If the problem is an "
            "extension update, please tell us the extension and the version that fails.",
        )
    try:
        listed = publisher.published_packages(HANDLER) or ()
    except FabricError:
        return _investigating(subject, vm)
    offered = dict(listed)
    named = named_versions(description)
    checked = [v for v in named if v in offered]
    if not checked:
        what = f"version {', '.join(named)}" if named else "no version"
        return _no_defect(
            subject,
            f"The request names {what} of {EXTENSION}, and Azure offers "
            f"{_versions(list(offered))}; we found no defect in a released package. "
            "Please tell us the version the VM agent fails to install and its error.",
        )
    damaged = [v for v in checked if offered[v] != WHOLE]
    if not damaged:
        return _no_defect(
            subject,
            f"We checked the {EXTENSION} package of {_versions(checked)}: it is intact "
            f"and installs on other VMs. We found no defect in the release; the cause is "
            f"likely on {vm} (its network path to the package, its disk or its VM agent).",
        )
    try:
        withdrawn = tuple(v for v in damaged if publisher.withdraw_version(HANDLER, v))
        remaining = [
            v for v, package in publisher.published_packages(HANDLER) or () if package == WHOLE
        ]
    except FabricError:
        return _investigating(subject, vm)
    installs = remaining[-1] if remaining else "the previous version"
    body = (
        f"Thank you for your patience. We confirmed that the package of {EXTENSION} "
        f"({HANDLER}) {_versions(damaged)} was published damaged, and we have rolled the "
        f"release back: Azure no longer offers {_versions(damaged)}. The VM agent on {vm} "
        f"keeps asking for the failed version until the extension is removed, so please "
        f"uninstall the {EXTENSION} extension from {vm} (in the portal: Extensions + "
        f"applications, {EXTENSION}, Uninstall). The next backup installs {EXTENSION} "
        f"{installs} and backups resume.\n\nWe are closing this request. If backups of "
        f"{vm} still fail after the extension is reinstalled, please open a new request."
    )
    return Answer(subject, body + _SIGNATURE, close=True, withdrawn=withdrawn)


def _no_defect(subject: str, text: str) -> Answer:
    return Answer(
        subject, "Thank you for contacting Microsoft Support. " + text + _SIGNATURE, False
    )


def _investigating(subject: str, vm: str) -> Answer:
    return Answer(
        subject,
        f"Thank you for contacting Microsoft Support. We could not complete our check of "
        f"the {EXTENSION} release for {vm} yet; our engineering team is looking into it "
        f"and will update this request." + _SIGNATURE,
        False,
    )


def _versions(versions: Sequence[str]) -> str:
    return ", ".join(versions) if versions else "no version"
