"""The shape of ``scenarios/<id>/scenario.yaml``, as pydantic models.

Every model forbids unknown keys and is strict about types, because a scenario file is
the contract between the person who writes a failure and the runner that proves it: a
misspelt key or a ``"180"`` where a number belongs must stop the run, not be ignored.
Checks that need more than one field (the id against its folder, faults against the
VMs, the runbook file) live in :mod:`lab.scenario`, which also turns pydantic's errors
into one plain line.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from lab.field_types import AgentVersion, BackupErrorCode, Text
from lab.provision.guest_variants import GUEST_VARIANTS

ID_PATTERN = r"^[a-z][a-z0-9-]*$"
VM_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,14}$"


def _guest_variant(value: Any) -> Any:
    if isinstance(value, str) and value not in GUEST_VARIANTS:
        raise ValueError(f"{value!r} is not one of {', '.join(GUEST_VARIANTS)}")
    return value


GuestVariantName = Annotated[str, BeforeValidator(_guest_variant)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


AzureClock = Literal["same", "lab-only"]


class Fidelity(_Strict):
    """What is the same as on Azure, and what the lab stands in for.

    ``azure_clock`` says whether the outcome also holds on Azure's own clock (``same``,
    the default) or only on the lab's faster one (``lab-only``: no honest mechanism
    reproduces Azure's outcome at time scale 1; the text's first sentence says so, and
    ``snaplab run`` and the journal show the mark).
    """

    same_as_azure: Text
    lab_stands_in: Text
    azure_clock: AzureClock = "same"


class VmDecl(_Strict):
    name: Annotated[str, Field(pattern=VM_NAME_PATTERN)]
    agent: AgentVersion
    # A guest variant (lab.provision.guest_variants); absent: the base Debian guest.
    guest: GuestVariantName | None = None


class FaultDecl(_Strict):
    fault: Text
    vm: Text
    params: dict[str, Any] = Field(default_factory=dict)
    # Names the fault makes up (a unit, a file, a version) that a customer's VM would not
    # tell an engineer in advance: the runbook lint refuses a step that names one.
    artefacts: list[Text] = Field(default_factory=list)


class Expect(_Strict):
    backup_error: BackupErrorCode
    diagnosis: Annotated[list[Annotated[str, Field(pattern=ID_PATTERN)]], Field(min_length=1)]


class AgentVariant(_Strict):
    """The scenario with every VM on another agent version, and what then happens.

    Agents differ (from about 2.10 on, an agent with extensions disabled reports an error
    per extension instead of staying silent), so one scenario can end differently per
    version; the ``agent=VERSION`` run variant proves each entry.
    """

    agent: AgentVersion
    expect: Expect


class Limits(_Strict):
    backup_seconds: Annotated[float, Field(gt=0)]


class ScenarioFile(_Strict):
    """One scenario file, exactly as written (see scenarios/agent-stopped)."""

    id: Annotated[str, Field(pattern=ID_PATTERN)]
    title: Text
    cause: Text
    fidelity: Fidelity
    vms: Annotated[list[VmDecl], Field(min_length=1)]
    warmup_backup: bool
    faults: Annotated[list[FaultDecl], Field(min_length=1)]
    expect: Expect
    runbook: Text
    limits: Limits
    agent_variants: list[AgentVariant] = Field(default_factory=list)


# Plain-language descriptions of the patterns above, for error messages.
PATTERN_MEANING = {
    ID_PATTERN: "lowercase letters, digits and '-', starting with a letter",
    VM_NAME_PATTERN: "lowercase letters, digits and '-', starting with a letter, "
    "at most 15 characters",
}
