"""Microsoft.Resources as the twin serves it: the lab's subscription and resource group.

``az login --identity`` lists the subscriptions the token can see (``GET
/subscriptions?api-version=2022-12-01``) and makes the first the default, so every later
``az`` command knows its subscription without ``--subscription``; ``az account show``,
``az group show`` and a script's ``SubscriptionClient`` read the same documents. A lab is
one subscription (``Enabled``, in the lab's tenant, named after the lab) holding one
resource group in the lab's location.

Routes::

    GET /subscriptions
    GET /subscriptions/<sub>
    GET /subscriptions/<sub>/resourcegroups            (either case of resourceGroups)
    GET /subscriptions/<sub>/resourcegroups/<rg>

Runs inside the twin's container on Debian's Python: stdlib and Werkzeug only.
"""

from __future__ import annotations

from collections.abc import Sequence

from werkzeug.wrappers import Response

from lab.platform.arm import naming
from lab.platform.arm.conventions import (
    JsonObject,
    ResourceType,
    api_versions,
    json_response,
    resource_group,
    subscription,
)
from lab.platform.arm.provider import Call, Route
from lab.platform.roster import Roster

NAMESPACE = "Microsoft.Resources"

# Azure's published api-versions of subscriptions (azure-mgmt-resource's subscription
# client; az 2.91 sends 2022-12-01) and of resource groups (az 2.91 sends 2024-11-01).
SUBSCRIPTIONS = ResourceType(
    NAMESPACE,
    "subscriptions",
    api_versions(
        "2016-06-01",
        "2018-06-01",
        "2019-06-01",
        "2019-11-01",
        "2020-01-01",
        "2021-01-01",
        "2022-12-01",
    ),
)
RESOURCE_GROUPS = ResourceType(
    NAMESPACE,
    "resourceGroups",
    api_versions(
        "2016-09-01",
        "2017-05-10",
        "2018-05-01",
        "2019-05-01",
        "2019-07-01",
        "2019-10-01",
        "2020-06-01",
        "2020-10-01",
        "2021-01-01",
        "2021-04-01",
        "2022-09-01",
        "2023-07-01",
        "2024-03-01",
        "2024-07-01",
        "2024-11-01",
        "2025-01-01",
        "2025-03-01",
        "2025-04-01",
    ),
)


class ResourcesProvider:
    """The lab's one subscription and its one resource group."""

    def routes(self) -> Sequence[Route]:
        groups = [
            Route(f"/subscriptions/<sub>/{spelling}", ("GET",), self._list_groups, RESOURCE_GROUPS)
            for spelling in ("resourcegroups", "resourceGroups")
        ] + [
            Route(
                f"/subscriptions/<sub>/{spelling}/<rg>", ("GET",), self._get_group, RESOURCE_GROUPS
            )
            for spelling in ("resourcegroups", "resourceGroups")
        ]
        return (
            Route("/subscriptions", ("GET",), self._list_subscriptions, SUBSCRIPTIONS),
            Route("/subscriptions/<sub>", ("GET",), self._get_subscription, SUBSCRIPTIONS),
            *groups,
        )

    def _list_subscriptions(self, call: Call) -> Response:
        return json_response(
            200,
            {
                "value": [subscription_document(call.roster)],
                "count": {"type": "Total", "value": 1},
            },
        )

    def _get_subscription(self, call: Call) -> Response:
        return json_response(
            200, subscription_document(subscription(call.roster, call.args["sub"]))
        )

    def _list_groups(self, call: Call) -> Response:
        roster = subscription(call.roster, call.args["sub"])
        return json_response(200, {"value": [group_document(roster)]})

    def _get_group(self, call: Call) -> Response:
        return json_response(200, group_document(resource_group(call.roster, call.args)))


def subscription_document(roster: Roster) -> JsonObject:
    """A subscription as ARM lists it (``Subscription`` of the 2022-12-01 api)."""
    return {
        "id": f"/subscriptions/{roster.subscription_id}",
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": roster.subscription_id,
        "tenantId": naming.tenant_id(roster.lab),
        "displayName": f"snaplab {roster.lab}",
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
    }


def group_document(roster: Roster) -> JsonObject:
    """The lab's resource group as ARM shows it."""
    return {
        "id": naming.group_id(roster),
        "name": roster.resource_group,
        "type": "Microsoft.Resources/resourceGroups",
        "location": roster.location,
        "properties": {"provisioningState": "Succeeded"},
    }
