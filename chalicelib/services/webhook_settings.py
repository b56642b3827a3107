"""The API's view of the webhook configuration: ``GET``/``POST /v1/settings``, secret
rotation, and the webhook fields of an account update.

What is stored, and the rules of secrets and disabled endpoints, are in
:mod:`chalicelib.webhooks.configuration`; this module turns requests into changes there
and the configuration into responses.

Invariants:
- A secret appears in exactly one response, the one that generated it (the first
  POST /v1/settings with a URL, the PUT that first gives an account a URL, a rotation).
  A POST with ``webhookSecret`` replaces the global secret at once; a rotation keeps the
  old one signing too for ``IMAPLESS_WEBHOOK_SECRET_OVERLAP_SECONDS`` (see
  :class:`~chalicelib.webhooks.signing.EndpointSecrets`). Removing an account's URL
  removes its secrets: a later URL gets a new one.
- EmailEngine's ``serviceSecret`` (the key of ``X-EE-Wh-Signature``) follows the same
  rule: write-only, shown once when generated (choosing ``webhooksSignature:
  "emailengine"`` without one), replaced at once by a POST with ``serviceSecret``.
- ``POST /v1/webhooks`` is an alias of the settings' webhook fields (:func:`update_webhooks`
  turns it into a :class:`SettingsUpdate`): one validation, one set of rules.
- URLs pass the outbound address policy when saved (and again at every connection, see
  :mod:`chalicelib.webhooks.client`).
- Saving a URL again (the global one also with ``webhooksEnabled: true``) is how an
  endpoint disabled by a 410 comes back. So an account-bound token can only ever
  re-enable its own account's endpoint.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.errors import ApiError
from chalicelib.schemas.accounts import AccountUpdate
from chalicelib.schemas.webhooks import (
    DisabledEndpoint,
    SecretRotated,
    SettingsOut,
    SettingsUpdate,
    SettingsUpdated,
    WebhooksOut,
    WebhooksUpdate,
    WebhooksUpdated,
)
from chalicelib.settings import get_settings
from chalicelib.store import accounts as account_store
from chalicelib.store.accounts import StoredAccount
from chalicelib.webhooks import configuration
from chalicelib.webhooks.client import WebhookUrlError, check_url_allowed
from chalicelib.webhooks.signing import EMAILENGINE_SIGNATURE, EndpointSecrets, generate_secret


def checked_url(url: str, field: str) -> str:
    """``url`` if the address policy allows it now; a 422 naming ``field`` otherwise."""
    try:
        return check_url_allowed(url)
    except WebhookUrlError as exc:
        raise ApiError(f"{field} cannot be used: {exc}", code=exc.code, status=422, details={field: str(exc)}) from None


# -- signing secrets ----------------------------------------------------------------------


def _rotated(current: EndpointSecrets | None, now: datetime) -> tuple[EndpointSecrets, SecretRotated]:
    new = generate_secret()
    if current is None:
        return EndpointSecrets(current=new), SecretRotated(webhookSecret=new)
    rotated = current.rotated(new, now, timedelta(seconds=get_settings().webhook_secret_overlap_seconds))
    return rotated, SecretRotated(webhookSecret=new, previousSecretValidUntil=rotated.previous_until)


def rotate_global_secret() -> SecretRotated:
    """A new global secret (shown once); the old one keeps signing during the overlap."""
    secrets, answer = _rotated(configuration.global_secrets(), datetime.now(UTC))
    configuration.save_global_secrets(secrets)
    return answer


def rotate_account_secret(account_id: str) -> SecretRotated:
    """A new secret for the account's own endpoint (shown once); the old one keeps signing
    during the overlap. An override still signed with the global secret gets its first own one."""
    stored = account_store.get_account(account_id)
    if not stored.webhooks:
        raise ApiError(f"account {account_id!r} has no webhook URL of its own", code="WebhookNotConfigured",
                       status=409, details={"webhooks": "not set on this account"})
    secrets, answer = _rotated(configuration.account_secrets(stored), datetime.now(UTC))
    configuration.set_account_secrets(stored, secrets)
    account_store.replace_account(stored)
    return answer


# -- the API's view ------------------------------------------------------------------------


def disabled_endpoints() -> list[DisabledEndpoint]:
    found = configuration.disabled_endpoint_records()
    return sorted((DisabledEndpoint.model_validate(value) for value in found), key=lambda e: e.disabledAt)


def settings_out() -> SettingsOut:
    current = configuration.load_settings()
    return SettingsOut(webhooks=current.url, webhooksEnabled=current.enabled, webhookEvents=list(current.events),
                       inboxNewOnly=current.inbox_new_only, webhookSecretSet=configuration.global_secret_set(),
                       webhooksSignature=current.signature, serviceSecretSet=configuration.service_secret_set(),
                       notifyText=current.notify_text, notifyTextSize=current.notify_text_size,
                       notifyHeaders=list(current.notify_headers), disabledWebhookEndpoints=disabled_endpoints())


def update_settings(request: SettingsUpdate, url_field: str = "webhooks") -> SettingsUpdated:
    """Apply the keys present in ``request``; generate the secret on first configuration.
    A refused URL is named ``url_field`` in the error (the field the caller sent)."""
    given = request.model_fields_set
    if "webhooks" in given and request.webhooks is not None:
        checked_url(request.webhooks, url_field)
    changes: dict[str, Any] = {name: getattr(request, name) for name in configuration.SETTING_NAMES
                               if name in given}
    configuration.save_settings(changes)
    updated = sorted(changes)
    generated: str | None = None
    if request.webhookSecret is not None:
        configuration.save_global_secrets(request.webhookSecret.get_secret_value())
        updated.append(configuration.SECRET_KEY)
    generated_service_secret: str | None = None
    if request.serviceSecret is not None:
        configuration.save_service_secret(request.serviceSecret.get_secret_value())
        updated.append(configuration.SERVICE_SECRET_KEY)
    current = configuration.load_settings()
    if request.webhookSecret is None and (current.url or current.enabled):
        generated = configuration.ensure_secret()
    if request.serviceSecret is None and current.signature == EMAILENGINE_SIGNATURE:
        generated_service_secret = configuration.ensure_service_secret()
    # Saving a URL again, or switching delivery on, is how a 410-disabled endpoint comes back.
    if current.url and ("webhooks" in given or request.webhooksEnabled):
        configuration.enable_endpoint(current.url)
    return SettingsUpdated(updated=updated, settings=settings_out(), webhookSecret=generated,
                           serviceSecret=generated_service_secret)


# -- POST/GET /v1/webhooks: an alias of the settings' webhook fields ------------------------


def webhooks_out(settings: SettingsOut | None = None) -> WebhooksOut:
    settings = settings or settings_out()
    return WebhooksOut(url=settings.webhooks, events=settings.webhookEvents, enabled=settings.webhooksEnabled,
                       webhookSecretSet=settings.webhookSecretSet)


def update_webhooks(request: WebhooksUpdate) -> WebhooksUpdated:
    """``url`` and ``events`` (when given) become ``webhooks`` and ``webhookEvents``, and delivery
    is switched on (``webhooksEnabled``), exactly as ``POST /v1/settings`` with those fields."""
    fields: dict[str, Any] = {"webhooks": request.url, "webhooksEnabled": True}
    if "events" in request.model_fields_set:
        fields["webhookEvents"] = request.events
    done = update_settings(SettingsUpdate.model_validate(fields), url_field="url")
    return WebhooksUpdated(**webhooks_out(done.settings).model_dump(), webhookSecret=done.webhookSecret)


def apply_account_override(stored: StoredAccount, request: AccountUpdate) -> str | None:
    """Copy ``webhooks``/``webhookEvents`` of an account update onto the stored account.

    The first URL gives the account's endpoint its own secret: returned here, to be shown
    in this response only. Saving a URL re-enables this account's endpoint (and nothing
    else); removing it removes the secret."""
    given = request.model_fields_set
    generated: str | None = None
    if "webhooks" in given:
        stored.webhooks = checked_url(request.webhooks, "webhooks") if request.webhooks else None
        if stored.webhooks is None:
            configuration.set_account_secrets(stored, None)
        else:
            configuration.enable_endpoint(stored.webhooks, account=stored.account)
            if stored.sealed_webhook_secret is None:
                generated = generate_secret()
                configuration.set_account_secrets(stored, generated)
    if "webhookEvents" in given:
        stored.webhook_events = list(request.webhookEvents) if request.webhookEvents is not None else None
    return generated
