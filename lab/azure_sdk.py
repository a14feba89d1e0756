"""Connect the unmodified Azure SDK to a lab's ARM twin.

Checks and tests build their ``ComputeManagementClient`` here so that pointing them at
real Azure instead is a change of credential and endpoint, not of code.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, TypeVar

from azure.core.credentials import AccessToken
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

TOKEN_LIFETIME_SECONDS = 3600

_Client = TypeVar("_Client")


class StaticTokenCredential:
    """A ``TokenCredential`` that always hands out the lab's fixed bearer token.

    The twin has no identity provider; it accepts one token, fixed at ``up``. Scopes,
    claims and tenant are ignored because there is nothing to ask them of.
    """

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("token must not be empty")
        self._token = token

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + TOKEN_LIFETIME_SECONDS)


def _lab_client(
    cls: type[_Client], endpoint: str, token: str, subscription_id: str, ca_file: Path | str
) -> _Client:
    """Any management client pointed at the twin at ``endpoint``
    (``https://127.0.0.1:<port>``); ``ca_file`` is the lab CA (``ca.pem``), so TLS stays
    verified, as with real Azure."""
    return cls(  # type: ignore[call-arg]
        StaticTokenCredential(token),
        subscription_id,
        base_url=endpoint,
        connection_verify=str(ca_file),
    )


def compute_client(
    endpoint: str, token: str, subscription_id: str, ca_file: Path | str
) -> ComputeManagementClient:
    """A compute client for the twin at ``endpoint``."""
    return _lab_client(ComputeManagementClient, endpoint, token, subscription_id, ca_file)


def backup_client(
    endpoint: str, token: str, subscription_id: str, ca_file: Path | str
) -> RecoveryServicesBackupClient:
    """Azure Backup (``azure-mgmt-recoveryservicesbackup``) for the twin at ``endpoint``."""
    return _lab_client(RecoveryServicesBackupClient, endpoint, token, subscription_id, ca_file)


def vaults_client(
    endpoint: str, token: str, subscription_id: str, ca_file: Path | str
) -> RecoveryServicesClient:
    """Recovery Services vaults (``azure-mgmt-recoveryservices``) for the twin."""
    return _lab_client(RecoveryServicesClient, endpoint, token, subscription_id, ca_file)


def network_client(
    endpoint: str, token: str, subscription_id: str, ca_file: Path | str
) -> NetworkManagementClient:
    """A network client (NICs, NSGs, security rules) for the twin at ``endpoint``."""
    return _lab_client(NetworkManagementClient, endpoint, token, subscription_id, ca_file)
