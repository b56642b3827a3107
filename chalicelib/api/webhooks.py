"""Settings and webhook endpoints: parse -> services.webhook_settings / webhook_recovery -> serialize.

Who may do what (a bound token is one bound to an account)::

    global settings, the global secret (read, change, rotate)     admin ('*' scope, unbound)
    an account's override URL, event list, secret (PUT, rotate)   that account's tokens, unbound api tokens
    the delivery log                                              bound: its account only; unbound: all
    replay / test for one account                                 that account's tokens, unbound api tokens
    replay / test spanning accounts or the global endpoint        admin

An endpoint disabled by 410 comes back when its owner saves its URL again: an account's
own endpoint through the account, the global one through the settings.
"""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.routing import Access, Call, api_route, json_response
from chalicelib.errors import ForbiddenError
from chalicelib.schemas.webhooks import (
    DeliveryList,
    DeliveryListQuery,
    ReplayRequest,
    ReplayResult,
    SecretRotated,
    SettingsOut,
    SettingsUpdate,
    SettingsUpdated,
    WebhooksOut,
    WebhooksUpdate,
    WebhooksUpdated,
    WebhookTestRequest,
    WebhookTestResult,
)
from chalicelib.services import idempotency, webhook_recovery, webhook_settings

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


@api_route(blueprint, "/v1/webhooks", "GET", summary="The webhook URL and event filter (the settings' webhook fields)",
           tag=SETTINGS_TAG, access=Access.ADMIN, response=WebhooksOut)
def get_webhooks(call: Call) -> WebhooksOut:
    return webhook_settings.webhooks_out()


@api_route(blueprint, "/v1/webhooks", "POST",
           summary="Set the webhook URL and event filter and enable webhooks (alias of POST /v1/settings' "
                   "webhooks, webhookEvents, webhooksEnabled)",
           tag=SETTINGS_TAG, access=Access.ADMIN, body=WebhooksUpdate, response=WebhooksUpdated, errors=(400, 422))
def update_webhooks(call: Call) -> WebhooksUpdated:
    return webhook_settings.update_webhooks(call.body)


@api_route(blueprint, "/v1/webhooks/secret/rotate", "POST",
           summary="A new global signing secret (shown once); the old one also signs for 24 h", tag=SETTINGS_TAG,
           access=Access.ADMIN, response=SecretRotated)
def rotate_global_secret(call: Call) -> SecretRotated:
    return webhook_settings.rotate_global_secret()


@api_route(blueprint, "/v1/account/{account}/webhooks/secret/rotate", "POST",
           summary="A new signing secret for the account's own webhook URL (shown once); the old one also signs "
                   "for 24 h", tag=TAG, response=SecretRotated, errors=(400, 404, 409))
def rotate_account_secret(call: Call) -> SecretRotated:
    return webhook_settings.rotate_account_secret(call.params["account"])


def _one_account_or_admin(call: Call, requested: str | None) -> str | None:
    """The account an operation is limited to: a bound token's own (another one is a 403),
    else ``requested``. None (every account, or the global endpoint) needs an admin token."""
    assert call.principal is not None  # not a public route
    bound = call.principal.account
    if bound is not None:
        if requested not in (None, bound):
            raise ForbiddenError(f"this token is bound to account {bound!r}", details={"account": requested})
        return bound
    if requested is None:
        call.principal.require_admin()
    return requested


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
           tag=TAG, access=Access.ACCOUNT, body=ReplayRequest, response=ReplayResult, errors=(400, 403, 422))
def replay(call: Call) -> Response:
    request: ReplayRequest = call.body
    request = request.model_copy(update={"account": _one_account_or_admin(call, request.account)})
    # Continuations are idempotent through their cursor; a retried first request only
    # through an Idempotency-Key (it would otherwise start a second run).
    key = call.request.headers.get(idempotency.HEADER) if call.request is not None else None
    answer, replayed = idempotency.run_once(
        "webhooks.replay", request.account or "", key, request.model_dump(mode="json"),
        lambda _done: webhook_recovery.replay(request).model_dump(mode="json", exclude_none=True))
    return json_response(ReplayResult.model_validate(answer), headers={idempotency.REPLAYED_HEADER: "true"}
                         if replayed else None)


@api_route(blueprint, "/v1/webhooks/replay/{eventId}", "POST", summary="Send one logged event again",
           tag=TAG, access=Access.ACCOUNT, response=ReplayResult, errors=(403, 404))
def replay_one(call: Call) -> ReplayResult:
    assert call.principal is not None
    return webhook_recovery.replay_one(call.params["eventId"], only_account=call.principal.account)


@api_route(blueprint, "/v1/webhooks/test", "POST", summary="POST a signed test event and report the answer",
           tag=TAG, access=Access.ACCOUNT, body=WebhookTestRequest, response=WebhookTestResult, errors=(400, 403, 409))
def send_test(call: Call) -> WebhookTestResult:
    return webhook_recovery.send_test(_one_account_or_admin(call, call.body.account))
