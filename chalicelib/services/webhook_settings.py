"""Webhook configuration: the global settings, the signing secrets of each endpoint,
per-account overrides, and endpoints disabled by a ``410 Gone``.

Settings live in the settings table under EmailEngine's names (``webhooks``,
``webhooksEnabled``, ``webhookEvents``, ``notifyText``, ``notifyTextSize``,
``notifyHeaders``). Where an event goes::

    url    = account.webhooks       or settings.webhooks
    events = account.webhookEvents  if set, else settings.webhookEvents   (["*"]: all types)
    sent   iff webhooksEnabled and url and the type matches and url is not disabled

There are two kinds of endpoint, each with its own signing secrets (Standard Webhooks'
model: whoever can verify one endpoint's requests cannot sign another's)::

    global endpoint     settings.webhooks   secrets in the settings table (webhookSecret)
    account endpoint    account.webhooks    secrets on the account item, sealed to the account

An account override saved before overrides had secrets of their own is still signed with
the global secrets until its secret is rotated (which gives it its own).

Invariants:
- Secrets are sealed (envelope encryption, context ``{"purpose": "webhook-secret"}``, plus
  ``"account"`` for an account's) and write-only: a secret appears in exactly one
  response, the one that generated it (the first POST /v1/settings with a URL, the PUT
  that first gives an account a URL, a rotation). A POST with ``webhookSecret`` replaces
  the global secret at once; a rotation keeps the old one signing too for
  ``IMAPLESS_WEBHOOK_SECRET_OVERLAP_SECONDS`` (see :class:`~chalicelib.webhooks.signing.EndpointSecrets`).
  Removing an account's URL removes its secrets: a later URL gets a new one.
- URLs pass the outbound address policy when saved (and again at every connection, see
  :mod:`chalicelib.webhooks.client`).
- A 410 disables the endpoint that got it (the global one, or one account's), never
  another endpoint with the same URL. It stays disabled until its owner saves its URL
  again (the global one also with ``webhooksEnabled: true``); its events are logged as
  skipped, so a replay can send them later. So an account-bound token can only ever
  re-enable its own account's endpoint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.errors import ApiError
from chalicelib.schemas.accounts import AccountUpdate
from chalicelib.schemas.webhooks import DisabledEndpoint, SecretRotated, SettingsOut, SettingsUpdate, SettingsUpdated
from chalicelib.security.envelope import open_secret, seal_secret
from chalicelib.settings import get_settings
from chalicelib.store import accounts as account_store
from chalicelib.store import settings as settings_store
from chalicelib.store.accounts import StoredAccount
from chalicelib.webhooks.client import WebhookUrlError, check_url_allowed
from chalicelib.webhooks.signing import EndpointSecrets, generate_secret

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


# -- signing secrets ----------------------------------------------------------------------


def _account_context(account_id: str) -> dict[str, str]:
    return {**SECRET_CONTEXT, "account": account_id}


def _open(sealed: str | None, context: dict[str, str]) -> EndpointSecrets | None:
    return EndpointSecrets.from_text(open_secret(sealed, context)) if sealed else None


def global_secrets() -> EndpointSecrets | None:
    """The global endpoint's secrets, or None when none was ever configured."""
    return _open(settings_store.get_sealed(SECRET_KEY), SECRET_CONTEXT)


def account_secrets(stored: StoredAccount) -> EndpointSecrets | None:
    """The account endpoint's own secrets (None: none of its own)."""
    return _open(stored.sealed_webhook_secret, _account_context(stored.account))


def ensure_secret() -> str | None:
    """Generate the global secret if there is none; the new secret, or None if one existed."""
    secret = generate_secret()
    created = settings_store.put_sealed(SECRET_KEY, seal_secret(secret, SECRET_CONTEXT), if_absent=True)
    return secret if created else None


def _rotated(current: EndpointSecrets | None, now: datetime) -> tuple[EndpointSecrets, SecretRotated]:
    new = generate_secret()
    if current is None:
        return EndpointSecrets(current=new), SecretRotated(webhookSecret=new)
    rotated = current.rotated(new, now, timedelta(seconds=get_settings().webhook_secret_overlap_seconds))
    return rotated, SecretRotated(webhookSecret=new, previousSecretValidUntil=rotated.previous_until)


def rotate_global_secret() -> SecretRotated:
    """A new global secret (shown once); the old one keeps signing during the overlap."""
    secrets, answer = _rotated(global_secrets(), datetime.now(UTC))
    settings_store.put_sealed(SECRET_KEY, seal_secret(secrets.to_text(), SECRET_CONTEXT))
    return answer


def rotate_account_secret(account_id: str) -> SecretRotated:
    """A new secret for the account's own endpoint (shown once); the old one keeps signing
    during the overlap. An override still signed with the global secret gets its first own one."""
    stored = account_store.get_account(account_id)
    if not stored.webhooks:
        raise ApiError(f"account {account_id!r} has no webhook URL of its own", code="WebhookNotConfigured",
                       status=409, details={"webhooks": "not set on this account"})
    secrets, answer = _rotated(account_secrets(stored), datetime.now(UTC))
    stored.sealed_webhook_secret = seal_secret(secrets.to_text(), _account_context(account_id))
    account_store.replace_account(stored)
    return answer


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


def forget_account_endpoints(account: str) -> int:
    """Drop the disabled state of every endpoint of ``account`` (account deletion); returns how many."""
    owned = [key for key, value in settings_store.values_with_prefix(DISABLED_ENDPOINT_PREFIX).items()
             if value.get("account") == account]
    for key in owned:
        settings_store.delete_value(key)
    return len(owned)


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
            stored.sealed_webhook_secret = None
        else:
            enable_endpoint(stored.webhooks, account=stored.account)
            if stored.sealed_webhook_secret is None:
                generated = generate_secret()
                stored.sealed_webhook_secret = seal_secret(generated, _account_context(stored.account))
    if "webhookEvents" in given:
        stored.webhook_events = list(request.webhookEvents) if request.webhookEvents is not None else None
    return generated
