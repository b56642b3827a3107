"""Settings and webhook endpoints: parse -> services.webhook_settings / webhook_recovery -> serialize."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.routing import Access, Call, api_route
from chalicelib.errors import ForbiddenError
from chalicelib.schemas.webhooks import (
    DeliveryList,
    DeliveryListQuery,
    ReplayRequest,
    ReplayResult,
    SettingsOut,
    SettingsUpdate,
    SettingsUpdated,
    WebhookTestRequest,
    WebhookTestResult,
)
from chalicelib.services import webhook_recovery, webhook_settings

blueprint = Blueprint(__name__)
SETTINGS_TAG = "Settings"
TAG = "Webhooks"


@api_route(blueprint, "/v1/settings", "GET", summary="Every setting (never the webhook secret)", tag=SETTINGS_TAG,
           access=Access.ADMIN, response=SettingsOut)
def get_all_settings(call: Call) -> dict:
    # EmailEngine clients ask for keys with ?webhooks=true&...; every setting is returned
    # anyway, unset ones as null (so not through the route's exclude-None serialization).
    return webhook_settings.settings_out().model_dump(mode="json")


@api_route(blueprint, "/v1/settings", "POST", summary="Change settings (the generated secret is shown once)",
           tag=SETTINGS_TAG, access=Access.ADMIN, body=SettingsUpdate, response=SettingsUpdated, errors=(400, 422))
def update_settings(call: Call) -> SettingsUpdated:
    return webhook_settings.update_settings(call.body)


@api_route(blueprint, "/v1/webhooks/deliveries", "GET", summary="The delivery log (14 days), newest first",
           tag=TAG, access=Access.ACCOUNT, query=DeliveryListQuery, response=DeliveryList, errors=(400, 403, 422))
def list_deliveries(call: Call) -> DeliveryList:
    query: DeliveryListQuery = call.query
    bound = call.principal.account if call.principal else None
    if bound is not None:
        if query.account not in (None, bound):
            raise ForbiddenError(f"this token is bound to account {bound!r}", details={"account": query.account})
        query = query.model_copy(update={"account": bound})
    return webhook_recovery.list_deliveries(query)


@api_route(blueprint, "/v1/webhooks/replay", "POST", summary="Send logged events again (same ids), oldest first",
           tag=TAG, access=Access.ADMIN, body=ReplayRequest, response=ReplayResult, errors=(400, 422))
def replay(call: Call) -> ReplayResult:
    return webhook_recovery.replay(call.body)


@api_route(blueprint, "/v1/webhooks/replay/{eventId}", "POST", summary="Send one logged event again",
           tag=TAG, access=Access.ADMIN, response=ReplayResult, errors=(404,))
def replay_one(call: Call) -> ReplayResult:
    return webhook_recovery.replay_one(call.params["eventId"])


@api_route(blueprint, "/v1/webhooks/test", "POST", summary="POST a signed test event and report the answer",
           tag=TAG, access=Access.ADMIN, body=WebhookTestRequest, response=WebhookTestResult, errors=(400, 409))
def send_test(call: Call) -> WebhookTestResult:
    return webhook_recovery.send_test(call.body.account)
