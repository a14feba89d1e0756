"""CRP's work for an extension create/update or a Run Command: publish, then wait for the agent.

CRP never reaches into a VM. It puts the handler in the VM's goal state with the new
settings and the next sequence number (through the fabric:
:meth:`~lab.platform.arm.fabric.FabricClient.enable_handler`), then reads what the VM
agent reports until the extension answers that sequence number. How the operation ends
is decided only by those reports, as on Azure:

====================================== ==============================================
the agent reports the extension        ``success`` (or ``warning``) for the sequence
                                       number: the operation succeeds with that status
the agent reports it ``error`` for the ``VMExtensionProvisioningError`` "VM has reported
sequence number                        a failure when processing extension ..." with its
                                       message (an agent from about 2.10 on whose
                                       extensions are disabled reports exactly that)
no status for the sequence number      ``VMAgentStatusCommunicationError`` "VM '...' has
within :data:`AGENT_EXTENSION_STATUS_  not reported status for VM agent or extensions..."
WAIT`                                  (agent stopped, VM cut off from the WireServer)
a status for the sequence number, but  ``VMExtensionProvisioningTimeout``, with the
none final within                      extension's last message (2.7.3.0 with extensions
:data:`EXTENSION_OPERATION_TIMEOUT`    disabled reports the settings "transitioning")
====================================== ==============================================

Both waits are Azure durations on the lab's clock (:mod:`lab.platform.timescale`); the
agent's own cycles are not scaled, so an outcome that hangs on the agent's 5-minute
goal-state period with extensions disabled depends on the scale (as in the
extensions-disabled scenario): at the default scale the agent's report comes after the
25-minute window and such an agent gives ``VMAgentStatusCommunicationError``.

Runs inside the twin's container on Debian's Python: stdlib only, and nothing from
``lab`` outside :mod:`lab.platform`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from lab.platform.arm.extensions import reported_extensions, split_handler
from lab.platform.arm.fabric import ExtensionReport, FabricClient, FabricError, PublishedHandler
from lab.platform.arm.operations import OperationError
from lab.platform.timescale import AGENT_EXTENSION_STATUS_WAIT, EXTENSION_OPERATION_TIMEOUT

_log = logging.getLogger("lab.platform.arm")

TROUBLESHOOT_URL = "https://aka.ms/vmextensionlinuxtroubleshoot"
SUCCEEDED = ("success", "warning")


def provisioning_error(name: str, handler: str, message: str) -> OperationError:
    """CRP's error for an extension that reported failure."""
    publisher, kind = split_handler(handler)
    return OperationError(
        f"VM has reported a failure when processing extension '{name}' (publisher "
        f"'{publisher}' and type '{kind}'). Error message: '{message}'. More information "
        f"on troubleshooting is available at {TROUBLESHOOT_URL}.",
        "VMExtensionProvisioningError",
    )


def agent_communication_error(vm: str) -> OperationError:
    """CRP's error for a VM whose agent reports nothing."""
    return OperationError(
        f"VM '{vm}' has not reported status for VM agent or extensions. Verify that the OS "
        "is up and healthy, the VM has a running VM agent, and that it can establish "
        "outbound connections to Azure storage. Please refer to "
        f"{TROUBLESHOOT_URL} for additional VM agent troubleshooting information.",
        "VMAgentStatusCommunicationError",
    )


def provisioning_timeout(name: str, last_message: str | None) -> OperationError:
    """CRP's error for an extension that never reached a final status."""
    reported = (
        f'The extension last reported "{last_message}".'
        if last_message
        else "The extension did not report a message."
    )
    return OperationError(
        f"Provisioning of VM extension {name} has timed out. Extension provisioning has "
        f"taken too long to complete. {reported}\r\n\r\nMore information on "
        f"troubleshooting is available at {TROUBLESHOOT_URL}",
        "VMExtensionProvisioningTimeout",
    )


@dataclass
class ExtensionEnablement:
    """The work of one extension PUT or Run Command, run on the operation's thread.

    Returns the extension's final report (its message is a Run Command's output);
    raises :class:`OperationError` with Azure's code otherwise.
    """

    fabric: FabricClient
    vm: str
    name: str  # the extension's ARM resource name
    handler: str  # <publisher>.<type>, as the agent knows it
    version: str
    public: Mapping[str, object] = field(default_factory=dict)
    protected: Mapping[str, object] | None = None
    timeout_seconds: Callable[[], float] = EXTENSION_OPERATION_TIMEOUT.lab_seconds
    agent_wait_seconds: Callable[[], float] = AGENT_EXTENSION_STATUS_WAIT.lab_seconds
    poll_seconds: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic

    def __call__(self) -> ExtensionReport:
        try:
            published = self.fabric.enable_handler(
                self.vm, self.handler, self.version, self.public, self.protected
            )
        except FabricError as exc:
            raise OperationError(f"The lab fabric did not answer: {exc}", "BadGateway") from exc
        _log.info(
            "%s %s on %s enabled with seq %d (incarnation %s)",
            self.handler,
            published.version,
            self.vm,
            published.seq_no,
            published.incarnation,
        )
        return self._await(published)

    def _await(self, published: PublishedHandler) -> ExtensionReport:
        started = self.monotonic()
        deadline = started + self.timeout_seconds()
        agent_deadline = started + self.agent_wait_seconds()
        answered = False
        last_message: str | None = None
        while True:
            try:
                report = self.fabric.vm(self.vm)
            except FabricError as exc:  # a fabric hiccup is no verdict; ask again
                _log.warning("cannot read %s while enabling %s: %s", self.vm, self.name, exc)
                report = None
            now = self.monotonic()
            ext = _answer(reported_extensions(report), self.handler, published.seq_no)
            if ext is not None:
                answered = True
                last_message = ext.message or last_message
                if ext.status in SUCCEEDED:
                    return ext
                if ext.status == "error":
                    raise provisioning_error(self.name, self.handler, ext.message or "")
            if not answered and now >= agent_deadline:
                raise agent_communication_error(self.vm)
            if now >= deadline:
                raise provisioning_timeout(self.name, last_message)
            self.sleep(self.poll_seconds)


def _answer(
    extensions: tuple[ExtensionReport, ...], handler: str, seq_no: int
) -> ExtensionReport | None:
    """The handler's report for this sequence number, if the agent has made one."""
    wanted = handler.lower()
    return next(
        (e for e in extensions if e.name.lower() == wanted and e.sequence_number == seq_no),
        None,
    )
