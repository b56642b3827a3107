"""Webhook configuration: the global settings, the signing secret, per-account overrides,
and endpoints disabled by a ``410 Gone``.

Settings live in the settings table under EmailEngine's names (``webhooks``,
``webhooksEnabled``, ``webhookEvents``, ``notifyText``, ``notifyTextSize``,
``notifyHeaders``). Where an event goes::

    url    = account.webhooks       or settings.webhooks
    events = account.webhookEvents  if set, else settings.webhookEvents   (["*"]: all types)
    sent   iff webhooksEnabled and url and the type matches and url is not disabled

Invariants:
- The signing secret is sealed (envelope encryption, context ``{"purpose": "webhook-secret"}``)
  and write-only: it appears in exactly one response, the POST that generated it. It is
  generated the first time a URL is configured without one; a POST with ``webhookSecret``
  replaces it; a POST without keeps it.
- URLs pass the outbound address policy when saved (and again at every connection, see
  :mod:`chalicelib.webhooks.client`).
- A URL disabled by 410 stays disabled until someone saves it again (globally or on an
  account) or sets ``webhooksEnabled: true``; its events are logged as skipped, so a
  replay can send them later.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib.errors import ApiError
from chalicelib.schemas.accounts import AccountUpdate
from chalicelib.schemas.webhooks import DisabledEndpoint, SettingsOut, SettingsUpdate, SettingsUpdated
from chalicelib.security.envelope import open_secret, seal_secret
from chalicelib.store import settings as settings_store
from chalicelib.store.accounts import StoredAccount
from chalicelib.webhooks.client import WebhookUrlError, check_url_allowed
from chalicelib.webhooks.signing import generate_secret, parse_secret

SETTING_NAMES = ("webhooks", "webhooksEnabled", "webhookEvents", "notifyText", "notifyTextSize", "notifyHeaders")
SECRET_KEY = "webhookSecret"  # noqa: S105 - the settings key under which the sealed secret is stored
SECRET_CONTEXT = {"purpose": "webhook-secret"}
DISABLED_ENDPOINT_PREFIX = "webhookEndpointDisabled:"
ALL_EVENTS = "*"


@dataclass(frozen=True)
class WebhookSettings:
    url: str | None = None
    enabled: bool = False
    events: tuple[str, ...] = (ALL_EVENTS,)
    notify_text: bool = False
    notify_text_size: int | None = None
    notify_headers: tuple[str, ...] = ()


def load_settings() -> WebhookSettings:
    values = settings_store.get_values(SETTING_NAMES)
    return WebhookSettings(
        url=values.get("webhooks"), enabled=bool(values.get("webhooksEnabled", False)),
        events=tuple(values.get("webhookEvents", [ALL_EVENTS])), notify_text=bool(values.get("notifyText", False)),
        notify_text_size=values.get("notifyTextSize"), notify_headers=tuple(values.get("notifyHeaders", [])))


def checked_url(url: str, field: str) -> str:
    """``url`` if the address policy allows it now; a 422 naming ``field`` otherwise."""
    try:
        return check_url_allowed(url)
    except WebhookUrlError as exc:
        raise ApiError(f"{field} cannot be used: {exc}", code=exc.code, status=422, details={field: str(exc)}) from None


# -- the signing secret --------------------------------------------------------------------


def signing_key() -> bytes | None:
    """The HMAC key of the current secret, or None when none was ever configured."""
    sealed = settings_store.get_sealed(SECRET_KEY)
    return parse_secret(open_secret(sealed, SECRET_CONTEXT)) if sealed else None


def ensure_secret() -> str | None:
    """Generate the secret if there is none; the new secret, or None if one existed."""
    secret = generate_secret()
    created = settings_store.put_sealed(SECRET_KEY, seal_secret(secret, SECRET_CONTEXT), if_absent=True)
    return secret if created else None


# -- endpoints disabled by 410 Gone -----------------------------------------------------------


def _endpoint_key(url: str) -> str:
    return DISABLED_ENDPOINT_PREFIX + hashlib.sha256(url.encode()).hexdigest()[:32]


def disable_endpoint(url: str, status_code: int | None, reason: str) -> None:
    settings_store.put_values({_endpoint_key(url): {
        "url": url, "statusCode": status_code, "reason": reason, "disabledAt": datetime.now(UTC).isoformat()}})


def enable_endpoint(url: str) -> None:
    settings_store.delete_value(_endpoint_key(url))


def is_endpoint_disabled(url: str) -> bool:
    return bool(settings_store.get_values([_endpoint_key(url)]))


def disabled_endpoints() -> list[DisabledEndpoint]:
    found = settings_store.values_with_prefix(DISABLED_ENDPOINT_PREFIX).values()
    return sorted((DisabledEndpoint.model_validate(value) for value in found), key=lambda e: e.disabledAt)


# -- the API's view ------------------------------------------------------------------------


def settings_out() -> SettingsOut:
    current = load_settings()
    return SettingsOut(webhooks=current.url, webhooksEnabled=current.enabled, webhookEvents=list(current.events),
                       webhookSecretSet=settings_store.get_sealed(SECRET_KEY) is not None,
                       notifyText=current.notify_text, notifyTextSize=current.notify_text_size,
                       notifyHeaders=list(current.notify_headers), disabledWebhookEndpoints=disabled_endpoints())


def update_settings(request: SettingsUpdate) -> SettingsUpdated:
    """Apply the keys present in ``request``; generate the secret on first configuration."""
    given = request.model_fields_set
    if "webhooks" in given and request.webhooks is not None:
        checked_url(request.webhooks, "webhooks")
    changes: dict[str, Any] = {name: getattr(request, name) for name in SETTING_NAMES if name in given}
    if changes:
        settings_store.put_values(changes)
    updated = sorted(changes)
    generated: str | None = None
    if request.webhookSecret is not None:
        settings_store.put_sealed(SECRET_KEY, seal_secret(request.webhookSecret.get_secret_value(), SECRET_CONTEXT))
        updated.append(SECRET_KEY)
    current = load_settings()
    if request.webhookSecret is None and (current.url or current.enabled):
        generated = ensure_secret()
    # Saving a URL again, or switching delivery on, is how a 410-disabled endpoint comes back.
    if current.url and ("webhooks" in given or request.webhooksEnabled):
        enable_endpoint(current.url)
    return SettingsUpdated(updated=updated, settings=settings_out(), webhookSecret=generated)


def apply_account_override(stored: StoredAccount, request: AccountUpdate) -> None:
    """Copy ``webhooks``/``webhookEvents`` of an account update onto the stored account."""
    given = request.model_fields_set
    if "webhooks" in given:
        stored.webhooks = checked_url(request.webhooks, "webhooks") if request.webhooks else None
        if stored.webhooks:
            enable_endpoint(stored.webhooks)
            ensure_secret()
    if "webhookEvents" in given:
        stored.webhook_events = list(request.webhookEvents) if request.webhookEvents is not None else None
