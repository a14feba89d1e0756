"""The shape of a case file (``case.yaml``), as pydantic models.

A case file is what a support engineer knows about a customer's VMs and what their backup
did: agent versions, network stack, ``waagent.conf`` settings that differ from the
defaults, a proxy, NSG rules, extension handler states, backup policy, load, faults that
combine, and the observed symptom. It is shared between people and tools (``case import``
writes it, ``case up`` builds it, ``case export`` writes it back), so every model forbids
unknown keys and is strict about types, as the scenario schema is
(:mod:`lab.scenario_schema`): a misspelt key must stop the build, not be ignored.

Checks that need more than one field (a fault's VM among the case's VMs, a fault id in
the catalog) live in :mod:`lab.cases.load`, which also turns pydantic's errors into one
line naming the file and the field. What the lab does with each field is in
``docs/case-file.md`` and :mod:`lab.cases.build`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from lab.field_types import AgentVersion, BackupErrorCode, Text
from lab.platform.backup.job import TAKE_SNAPSHOT, TRANSFER_TO_VAULT
from lab.provision.guest_variants import GUEST_VARIANTS

FORMAT: Literal[1] = 1
VM_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,14}$"  # lab.provision.labels' rule for VM names
BASE_GUEST = "debian"  # the lab's base guest: Debian with ifupdown and walinuxagent.service
CASE_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
WAAGENT_KEY_PATTERN = r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z0-9]+)+$"
# Azure's rule for NSG rule names: 1-80 characters, letters, digits, '_', '.', '-',
# starting with a letter or digit, ending with a letter, digit or '_'.
RULE_NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$"
RUN_TIME_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d$"
PROXY_URL_PATTERN = r"^http://[A-Za-z0-9.-]+(:\d{1,5})?/?$"
EXTENSION_TYPE_PATTERN = r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z0-9]+)+$"
VERSION_PATTERN = r"^\d+(\.\d+){1,3}$"
SIZE_PATTERN = r"^(Standard|Basic)_[A-Za-z0-9_]+$"

# The lab's VM size: a guest's real limits (1 vCPU, 1 GiB) are this Azure size.
LAB_VM_SIZE = "Standard_B1s"
VMSNAPSHOT_LINUX = "Microsoft.Azure.RecoveryServices.VMSnapshotLinux"


def _guest(value: Any) -> Any:
    if isinstance(value, str) and value != BASE_GUEST and value not in GUEST_VARIANTS:
        known = ", ".join((BASE_GUEST, *GUEST_VARIANTS))
        raise ValueError(f"unknown guest {value!r} (one of: {known})")
    return value


def _text_value(value: Any) -> Any:
    """A ``waagent.conf`` value is text; YAML reads ``3128`` as a number, which is meant as
    text. ``no``/``yes`` (YAML booleans) are refused: the file says ``n``/``y``."""
    if isinstance(value, bool):
        raise ValueError(
            f"{'yes' if value else 'no'!r} reads as a YAML boolean: write the value as "
            'waagent.conf has it, quoted (e.g. "y" or "n")'
        )
    if isinstance(value, int | float):
        return str(value)
    return value


def _port_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _run_time(value: Any) -> Any:
    """YAML 1.1 reads an unquoted ``12:30`` as the base-60 number 750: give it back as the
    time a person wrote."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return f"{value // 60:02d}:{value % 60:02d}"
    return value


def _timestamp(value: Any) -> Any:
    """A UTC time as ISO 8601 text (``2026-12-01T02:00:00Z``), from YAML's timestamp or a
    string; always written back the same way so a file round-trips."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{value!r} is not a time (expected ISO 8601, e.g. 2026-12-01T02:00:00Z)"
            ) from None
    else:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


GuestName = Annotated[str, BeforeValidator(_guest)]
ConfValue = Annotated[str, BeforeValidator(_text_value)]
ConfKey = Annotated[str, Field(pattern=WAAGENT_KEY_PATTERN)]
PORTS_PATTERN = r"^(\*|\d{1,5}(-\d{1,5})?)$"
Ports = Annotated[str, BeforeValidator(_port_text), Field(pattern=PORTS_PATTERN)]
Timestamp = Annotated[str, BeforeValidator(_timestamp)]
VmName = Annotated[str, Field(pattern=VM_NAME_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Proxy(_Strict):
    """The customer's HTTP proxy, and where it is configured.

    ``system``: ``/etc/environment`` (people's shells use it, a systemd service such as
    the agent does not); ``agent``: ``HttpProxy.Host``/``HttpProxy.Port`` in
    ``/etc/waagent.conf`` (the agent and the VMSnapshot extension use it).
    """

    http: Annotated[str, Field(pattern=PROXY_URL_PATTERN)]
    where: Literal["system", "agent"] = "system"


HandlerState = Literal["enabled", "not-installed", "failed", "files-unreadable", "update-failed"]


class Extension(_Strict):
    """An extension handler on the VM, as the agent's files show it."""

    type: Annotated[str, Field(pattern=EXTENSION_TYPE_PATTERN)]
    version: Annotated[str, Field(pattern=VERSION_PATTERN)] | None = None
    handler_state: HandlerState = "enabled"
    status_code: int | None = None  # the last status code seen, if any


class Load(_Strict):
    cpu_busy: bool = False  # CPU above 90 %
    memory_free_mib: Annotated[int, Field(ge=0)] | None = None  # what is left free, if low


class PrePostScript(_Strict):
    """An application-consistency pre/post script (``VMSnapshotScriptPluginConfig.json``)."""

    hangs: bool = False
    timeout_seconds: Annotated[int, Field(gt=0)] | None = None  # timeoutInSeconds
    continue_on_failure: bool | None = None  # continueBackupOnFailure


AgentService = Literal["running", "stopped", "crashed"]
# running; shut down from inside (the platform shows it stopped, as Azure does); shut down
# from inside while the platform keeps showing it running (the 2016 article's anomaly).
Power = Literal["running", "shut-down-inside", "shut-down-inside-unseen"]


class CaseVm(_Strict):
    name: VmName
    agent: AgentVersion
    guest: GuestName = BASE_GUEST
    size: Annotated[str, Field(pattern=SIZE_PATTERN)] = LAB_VM_SIZE
    waagent_conf: dict[ConfKey, ConfValue] = Field(default_factory=dict)
    proxy: Proxy | None = None
    agent_service: AgentService = "running"
    dhcp: bool = True
    extensions: list[Extension] = Field(default_factory=list)
    load: Load = Field(default_factory=Load)
    prepost_script: PrePostScript = Field(default_factory=PrePostScript)
    power: Power = "running"


class NsgRule(_Strict):
    """A rule of the VMs' network security groups (every VM's, or ``vm``'s only)."""

    name: Annotated[str, Field(pattern=RULE_NAME_PATTERN)]
    vm: VmName | None = None
    direction: Literal["Inbound", "Outbound"] = "Outbound"
    access: Literal["Allow", "Deny"]
    priority: Annotated[int, Field(ge=100, le=4096)]
    protocol: Literal["*", "Tcp", "Udp", "Icmp", "Esp", "Ah"] = "*"
    source: Text = "*"
    destination: Text = "*"
    ports: Ports = "*"


class Nsg(_Strict):
    rules: list[NsgRule] = Field(default_factory=list)


class Policy(_Strict):
    """A daily backup policy: its run time (UTC, Azure's clock) and the VMs on it."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,149}$")]
    time: Annotated[str, BeforeValidator(_run_time), Field(pattern=RUN_TIME_PATTERN)]
    vms: list[VmName] | None = None  # None: every VM of the case


class Backup(_Strict):
    policy: Policy | None = None


class CaseFault(_Strict):
    """A catalog fault, as in a scenario file: its id (a cause id), VM and parameters."""

    fault: Text
    vm: VmName
    params: dict[str, Any] = Field(default_factory=dict)


class Symptom(_Strict):
    """What the customer saw of the backup job."""

    status: Literal["Failed", "Completed"] = "Failed"
    vm: VmName | None = None  # the VM whose job it was; None: the case's first VM
    error_code: BackupErrorCode | None = None
    message: Text | None = None
    sub_task: Literal["Take Snapshot", "Transfer data to vault"] | None = None
    started: Timestamp | None = None
    duration_minutes: Annotated[float, Field(ge=0)] | None = None


class Source(_Strict):
    """Where the case came from (``case import`` fills it)."""

    bundle: Text
    imported_at: Timestamp | None = None
    redacted: bool = False


class ObservedError(_Strict):
    """An error line of the VM's logs: the file (a bundle member), line number and text."""

    file: Text
    line: Annotated[int, Field(ge=1)]
    text: Text


class Observed(_Strict):
    """What a log bundle showed of one VM beyond its settings (``case import`` fills it;
    nothing is built from it): the agent version the logs name, the distribution, the
    WireServer address the agent used, whether a DHCP lease was seen, the last goal-state
    incarnation, and every error the logs show."""

    vm: VmName | None = None  # None: the case's first VM
    agent: str | None = None  # the version the logs name (a VM's ``agent`` is the lab's)
    distro: str | None = None
    wireserver: str | None = None
    dhcp_lease: bool | None = None  # None: the bundle holds no lease file to judge by
    incarnation: Annotated[int, Field(ge=0)] | None = None
    errors: list[ObservedError] = Field(default_factory=list)


class Case(_Strict):
    """One case file, exactly as written (see ``docs/case-file.md``)."""

    format: Literal[1]
    name: Annotated[str, Field(pattern=CASE_NAME_PATTERN)]
    description: str | None = None
    source: Source | None = None
    vms: Annotated[list[CaseVm], Field(min_length=1)]
    nsg: Nsg = Field(default_factory=Nsg)
    backup: Backup = Field(default_factory=Backup)
    faults: list[CaseFault] = Field(default_factory=list)
    symptom: Symptom | None = None
    observed: Observed | None = None
    evidence: dict[Text, str] = Field(default_factory=dict)

    def vm(self, name: str) -> CaseVm | None:
        return next((vm for vm in self.vms if vm.name == name), None)

    @property
    def symptom_vm(self) -> str:
        """The VM whose backup the symptom is about (the first VM unless it says)."""
        if self.symptom is not None and self.symptom.vm is not None:
            return self.symptom.vm
        return self.vms[0].name


SUB_TASKS = (TAKE_SNAPSHOT, TRANSFER_TO_VAULT)

# Plain-language descriptions of the patterns above, for error messages.
PATTERN_MEANING = {
    CASE_NAME_PATTERN: "lowercase letters, digits and '-', starting with a letter, "
    "at most 63 characters",
    VM_NAME_PATTERN: "lowercase letters, digits and '-', starting with a letter, "
    "at most 15 characters",
    WAAGENT_KEY_PATTERN: "a waagent.conf key such as Extensions.Enabled",
    RULE_NAME_PATTERN: "an NSG rule name (letters, digits, '_', '.', '-'; 1-80 characters)",
    RUN_TIME_PATTERN: "a time of day HH:MM (UTC)",
    PROXY_URL_PATTERN: "an http:// URL with a host and an optional port",
    EXTENSION_TYPE_PATTERN: "an extension type Publisher.Type, e.g. " + VMSNAPSHOT_LINUX,
    VERSION_PATTERN: "a version such as 1.0.9225.0",
    SIZE_PATTERN: "an Azure VM size such as Standard_B1s",
    PORTS_PATTERN: "'*', a port or a range such as 8000-8100",
}
