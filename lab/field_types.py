"""Field types shared by the files people write for the lab (scenario files, case files).

Both are strict pydantic models (:mod:`lab.scenario_schema`, :mod:`lab.cases.model`); the
fields they have in common must accept and refuse the same values, so they are typed once.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from lab.platform.backup.codes import BY_CODE
from lab.provision.images import AGENT_FLAVORS


def _agent_version(value: Any) -> Any:
    """YAML reads ``agent: 2.2`` as a number; compare it as the text a person wrote."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value not in AGENT_FLAVORS:
        raise ValueError(f"{value!r} is not one of {', '.join(AGENT_FLAVORS)}")
    return value


def _backup_error(value: Any) -> Any:
    if isinstance(value, str) and value not in BY_CODE:
        raise ValueError(f"{value!r} is not an Azure Backup error code ({', '.join(BY_CODE)})")
    return value


AgentVersion = Annotated[str, BeforeValidator(_agent_version)]
BackupErrorCode = Annotated[str, BeforeValidator(_backup_error)]
Text = Annotated[str, Field(min_length=1)]
