"""Webhook configuration as stored: the global settings, the signing secrets of each
endpoint, per-account overrides, and endpoints disabled by a ``410 Gone``.

Settings live in the settings table under EmailEngine's names (``webhooks``,
``webhooksEnabled``, ``webhookEvents``, ``inboxNewOnly``, ``notifyText``, ``notifyTextSize``,
``notifyHeaders``) and ours (``webhooksSignature``). Where an event goes
(:mod:`chalicelib.webhooks.targets` applies it)::

    url    = account.webhooks       or settings.webhooks
    events = account.webhookEvents  if set, else settings.webhookEvents   (["*"]: all types)
    sent   iff webhooksEnabled and url and the type matches and url is not disabled
           and not (inboxNewOnly and a messageNew outside the inbox)    (both endpoint kinds)

There are two kinds of endpoint, each with its own signing secrets (Standard Webhooks'
model: whoever can verify one endpoint's requests cannot sign another's)::

    global endpoint     settings.webhooks   secrets in the settings table (webhookSecret)
    account endpoint    account.webhooks    secrets on the account item, sealed to the account

An account override saved before overrides had secrets of their own is still signed with
the global secrets until its secret is rotated (which gives it its own).

With ``webhooksSignature: "emailengine"`` every endpoint's requests also carry
EmailEngine's signature, made with the one deployment-wide *service secret* (EmailEngine's
``serviceSecret``: receivers written for EmailEngine verify with it unchanged), stored
sealed under its own key and generated when that style is first chosen without one.

Invariants:
- Secrets are sealed (envelope encryption, context ``{"purpose": "webhook-secret"}``, plus
  ``"account"`` for an account's) and never leave this module unsealed except to sign
  (:mod:`chalicelib.webhooks.targets`) or in the one response that generated them
  (:mod:`chalicelib.services.webhook_settings`, the API's view of this configuration).
- A 410 disables the endpoint that got it (the global one, or one account's), never
  another endpoint with the same URL. It stays disabled until its owner saves its URL
  again; its events are logged as skipped, so a replay can send them later.

This module holds no request or response shapes: the delivery side (targets, delivery)
reads it without loading the API's schemas.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib.security.envelope import open_secret, seal_secret
from chalicelib.store import settings as settings_store
from chalicelib.store.accounts import StoredAccount
from chalicelib.webhooks.signing import (
    STANDARD_SIGNATURE,
    EndpointSecrets,
    SignatureStyle,
    generate_secret,
    generate_service_secret,
)

SETTING_NAMES = ("webhooks", "webhooksEnabled", "webhookEvents", "inboxNewOnly", "webhooksSignature", "notifyText",
                 "notifyTextSize", "notifyHeaders")
SECRET_KEY = "webhookSecret"  # noqa: S105 - the settings key under which the sealed secret is stored
SECRET_CONTEXT = {"purpose": "webhook-secret"}
SERVICE_SECRET_KEY = "serviceSecret"  # noqa: S105 - EmailEngine's settings key, not a secret
SERVICE_SECRET_CONTEXT = {"purpose": "webhook-service-secret"}

DISABLED_ENDPOINT_PREFIX = "webhookEndpointDisabled:"
ALL_EVENTS = "*"


@dataclass(frozen=True)
class WebhookSettings:
    url: str | None = None
    enabled: bool = False
    events: tuple[str, ...] = (ALL_EVENTS,)
    inbox_new_only: bool = False
    signature: SignatureStyle = STANDARD_SIGNATURE
    notify_text: bool = False
    notify_text_size: int | None = None
    notify_headers: tuple[str, ...] = ()


def load_settings() -> WebhookSettings:
    values = settings_store.get_values(SETTING_NAMES)
    return WebhookSettings(
        url=values.get("webhooks"), enabled=bool(values.get("webhooksEnabled", False)),
        events=tuple(values.get("webhookEvents", [ALL_EVENTS])),
        inbox_new_only=bool(values.get("inboxNewOnly", False)),
        signature=values.get("webhooksSignature") or STANDARD_SIGNATURE,
        notify_text=bool(values.get("notifyText", False)),
        notify_text_size=values.get("notifyTextSize"), notify_headers=tuple(values.get("notifyHeaders", [])))


def save_settings(changes: Mapping[str, Any]) -> None:
    """Store the given settings (names from :data:`SETTING_NAMES`); the others keep their values."""
    if changes:
        settings_store.put_values(changes)


# -- signing secrets ----------------------------------------------------------------------


def _account_context(account_id: str) -> dict[str, str]:
    return {**SECRET_CONTEXT, "account": account_id}


def _open(sealed: str | None, context: dict[str, str]) -> EndpointSecrets | None:
    return EndpointSecrets.from_text(open_secret(sealed, context)) if sealed else None


def global_secrets() -> EndpointSecrets | None:
    """The global endpoint's secrets, or None when none was ever configured."""
    return _open(settings_store.get_sealed(SECRET_KEY), SECRET_CONTEXT)


def global_secret_set() -> bool:
    return settings_store.get_sealed(SECRET_KEY) is not None


def save_global_secrets(secrets: EndpointSecrets | str) -> None:
    """Replace the global endpoint's secrets (a single secret, or current + previous)."""
    text = secrets if isinstance(secrets, str) else secrets.to_text()
    settings_store.put_sealed(SECRET_KEY, seal_secret(text, SECRET_CONTEXT))


def ensure_secret() -> str | None:
    """Generate the global secret if there is none; the new secret, or None if one existed."""
    secret = generate_secret()
    created = settings_store.put_sealed(SECRET_KEY, seal_secret(secret, SECRET_CONTEXT), if_absent=True)
    return secret if created else None


def service_secret() -> str | None:
    """EmailEngine's service secret (the key of ``X-EE-Wh-Signature``), or None when none was set."""
    sealed = settings_store.get_sealed(SERVICE_SECRET_KEY)
    return open_secret(sealed, SERVICE_SECRET_CONTEXT) if sealed else None


def service_secret_set() -> bool:
    return settings_store.get_sealed(SERVICE_SECRET_KEY) is not None


def save_service_secret(secret: str) -> None:
    settings_store.put_sealed(SERVICE_SECRET_KEY, seal_secret(secret, SERVICE_SECRET_CONTEXT))


def ensure_service_secret() -> str | None:
    """Generate the service secret if there is none; the new secret, or None if one existed."""
    secret = generate_service_secret()
    created = settings_store.put_sealed(SERVICE_SECRET_KEY, seal_secret(secret, SERVICE_SECRET_CONTEXT),
                                        if_absent=True)
    return secret if created else None


def account_secrets(stored: StoredAccount) -> EndpointSecrets | None:
    """The account endpoint's own secrets (None: none of its own)."""
    return _open(stored.sealed_webhook_secret, _account_context(stored.account))


def set_account_secrets(stored: StoredAccount, secrets: EndpointSecrets | str | None) -> None:
    """Seal ``secrets`` onto the account item (None removes them); the caller saves the account."""
    if secrets is None:
        stored.sealed_webhook_secret = None
        return
    text = secrets if isinstance(secrets, str) else secrets.to_text()
    stored.sealed_webhook_secret = seal_secret(text, _account_context(stored.account))


# -- endpoints disabled by 410 Gone -----------------------------------------------------------


def _endpoint_key(url: str, account: str | None) -> str:
    # The global endpoint keeps the key it had before account endpoints had their own state.
    endpoint = url if account is None else f"{account}\n{url}"
    return DISABLED_ENDPOINT_PREFIX + hashlib.sha256(endpoint.encode()).hexdigest()[:32]


def disable_endpoint(url: str, status_code: int | None, reason: str, account: str | None = None) -> None:
    """Disable the global endpoint (``account`` None) or that account's own endpoint."""
    settings_store.put_values({_endpoint_key(url, account): {
        "url": url, "account": account, "statusCode": status_code, "reason": reason,
        "disabledAt": datetime.now(UTC).isoformat()}})


def enable_endpoint(url: str, account: str | None = None) -> None:
    settings_store.delete_value(_endpoint_key(url, account))


def is_endpoint_disabled(url: str, account: str | None = None) -> bool:
    return bool(settings_store.get_values([_endpoint_key(url, account)]))


def disabled_endpoint_records() -> list[dict[str, Any]]:
    """Every disabled endpoint as stored: ``url``, ``account``, ``statusCode``, ``reason``, ``disabledAt``."""
    return list(settings_store.values_with_prefix(DISABLED_ENDPOINT_PREFIX).values())


def forget_account_endpoints(account: str) -> int:
    """Drop the disabled state of every endpoint of ``account`` (account deletion); returns how many."""
    owned = [key for key, value in settings_store.values_with_prefix(DISABLED_ENDPOINT_PREFIX).items()
             if value.get("account") == account]
    for key in owned:
        settings_store.delete_value(key)
    return len(owned)
