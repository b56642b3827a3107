"""OAuth2 application use cases: register, read, list, update, delete; and what an
application's accounts need from it (its provider settings and client secret).

Invariants:
- The client secret is sealed before the first write (bound to the application's id) and
  never returned: reads show ``******``; it is opened only to request tokens.
- A change of where tokens are requested (``provider``, ``authority``, ``tokenUrl``) or of
  ``clientId`` must bring ``clientSecret`` again (``CredentialsRequired``): the token
  endpoint receives the client secret and every account's refresh token, so a token holder
  must not be able to point it at a server of their own.
- An application that accounts still log in through cannot be deleted (409
  ``OAuth2AppInUse``).
"""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime
from typing import Any

from chalicelib.errors import CredentialsRequiredError, OAuth2AppInUseError, ValidationError
from chalicelib.oauth2.providers import Endpoint, GenericProvider, ProviderSettings, resolve_provider
from chalicelib.schemas.oauth2 import (
    GENERIC_FIELDS,
    MailEndpoint,
    OAuth2AppCreate,
    OAuth2AppOut,
    OAuth2AppUpdate,
    check_provider_fields,
)
from chalicelib.security.envelope import open_secret, seal_secret
from chalicelib.store import accounts as account_store
from chalicelib.store import oauth2_apps as app_store
from chalicelib.store.oauth2_apps import StoredApp

# Fields whose change sends the client secret (and refresh tokens) somewhere else.
_TOKEN_DESTINATION = ("provider", "authority", "tokenUrl", "clientId")
_SHOWN_IN_ACCOUNT_OF = 5  # how many dependent accounts an OAuth2AppInUse names


def _context(app_id: str) -> dict[str, str]:
    return {"purpose": "oauth2-client-secret", "app": app_id}


def new_app_id() -> str:
    return "app_" + secrets.token_hex(8)


def _fields(model: OAuth2AppCreate | OAuth2AppUpdate, only_set: bool) -> dict[str, Any]:
    dumped = model.model_dump(mode="json", exclude={"clientSecret"}, exclude_unset=only_set)
    return {name: value for name, value in dumped.items() if not (only_set and value is None)}


def create_app(request: OAuth2AppCreate) -> StoredApp:
    app_id = new_app_id()
    now = datetime.now(UTC)
    fields = {name: value for name, value in _fields(request, only_set=False).items() if value is not None}
    sealed = seal_secret(request.clientSecret.get_secret_value(), _context(app_id))
    return app_store.insert_app(StoredApp(id=app_id, fields=fields, sealed_client_secret=sealed,
                                          created=now, updated=now))


def get_app(app_id: str) -> StoredApp:
    return app_store.get_app(app_id)


def list_apps(page: int, page_size: int) -> tuple[list[StoredApp], int, int]:
    apps = app_store.list_apps()
    total = len(apps)
    return apps[page * page_size:(page + 1) * page_size], total, max(1, math.ceil(total / page_size))


def app_out(app: StoredApp) -> OAuth2AppOut:
    return OAuth2AppOut(id=app.id, created=app.created, updated=app.updated, **app.fields)


def update_app(app_id: str, request: OAuth2AppUpdate) -> StoredApp:
    app = app_store.get_app(app_id)
    changes = _fields(request, only_set=True)
    merged = {**app.fields, **changes}
    if changes.get("provider", app.fields["provider"]) != app.fields["provider"]:
        # The old provider's own fields do not carry over to the new one.
        for name in ("authority", *GENERIC_FIELDS):
            if name not in changes:
                merged.pop(name, None)
    try:
        check_provider_fields(merged["provider"], merged)
    except ValueError as exc:
        raise ValidationError(str(exc), details={"provider": str(exc)}) from None
    moved = [name for name in _TOKEN_DESTINATION if merged.get(name) != app.fields.get(name)]
    if moved and request.clientSecret is None:
        raise CredentialsRequiredError(
            f"{', '.join(moved)} change where the client secret is sent: send clientSecret with them",
            details={"clientSecret": f"required when {', '.join(moved)} change"})
    app.fields = merged
    if request.clientSecret is not None:
        app.sealed_client_secret = seal_secret(request.clientSecret.get_secret_value(), _context(app_id))
    return app_store.replace_app(app)


def accounts_using(app_id: str) -> list[str]:
    """Ids of the accounts that log in through the application (IMAP or SMTP)."""
    return [account.account for account in account_store.list_accounts()
            if any((config or {}).get("app") == app_id for config in (account.imap, account.smtp))]


def delete_app(app_id: str) -> None:
    app_store.get_app(app_id)  # 404 first: a missing application is not "in use"
    users = accounts_using(app_id)
    if users:
        raise OAuth2AppInUseError(
            f"{len(users)} account(s) log in through OAuth2 application {app_id!r}; delete or move them first",
            details={"accounts": users[:_SHOWN_IN_ACCOUNT_OF], "total": len(users)})
    app_store.delete_app(app_id)


def client_secret(app: StoredApp) -> str:
    """The application's client secret, opened for a token request (kept in memory only)."""
    return open_secret(app.sealed_client_secret, _context(app.id))


def _endpoint(value: dict[str, Any] | None) -> Endpoint | None:
    if value is None:
        return None
    endpoint = MailEndpoint.model_validate(value)
    return Endpoint(endpoint.host, endpoint.port, endpoint.secure)


def provider_settings(app: StoredApp) -> ProviderSettings:
    """The token endpoint, scopes and mail servers of the application's accounts."""
    fields = app.fields
    generic = None
    if fields["provider"] == "generic":
        imap = _endpoint(fields["imap"])
        assert imap is not None  # required for generic (check_provider_fields)
        generic = GenericProvider(fields["authorizationUrl"], fields["tokenUrl"], tuple(fields["scopes"]),
                                  imap, _endpoint(fields.get("smtp")))
    return resolve_provider(fields["provider"], authority=fields.get("authority"), generic=generic,
                            extra_scopes=tuple(fields.get("extraScopes") or ()),
                            skip_scopes=tuple(fields.get("skipScopes") or ()))
