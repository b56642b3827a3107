"""Hosted authorization: the user consents at the provider and the account is created (or
re-authorized) from the code the provider sends back.

    POST /v1/authentication/form ──▶ start_authorization ──▶ {url} = provider's authorize URL
        (state: signed id + expiry; pending record under the id; PKCE challenge of the derived verifier)
    browser ──▶ provider consent ──302──▶ GET /oauth?code&state ──▶ complete_authorization
        verify state (signature, expiry, single use) ─▶ exchange code + verifier ─▶ create / re-authorize
        ──302──▶ redirectUrl?account=...&state=new|existing   (or ?error=<code>)

Invariants:
- The redirect URI sent to the provider is the application's registered ``redirectUrl`` (the
  deployment's URL of ``GET /oauth``, stage prefix included), never one built from the request.
- The user is only ever sent to a ``redirectUrl`` that a form stored: a state whose signature
  does not verify leads nowhere (:class:`AuthorizationRefusedError` without a destination).
- Every failure after that is a redirect with a stable ``error`` code (``access_denied`` and the
  provider's other codes as given, ``expired``, ``alreadyUsed``, ``exchangeFailed``,
  ``accountFailed``); no token or secret is in a URL other than the provider's code and state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import SecretStr

from chalicelib.errors import ApiError, OAuth2AppNotFoundError, ValidationError
from chalicelib.oauth2.code_exchange import authorize_url, exchange_code
from chalicelib.observability import logger
from chalicelib.schemas.accounts import (
    AccountCreate,
    AccountUpdate,
    OAuth2Login,
    OAuth2LoginUpdate,
    OAuth2User,
    OAuth2UserUpdate,
)
from chalicelib.schemas.oauth2_authorization import AuthenticationForm
from chalicelib.services import accounts, oauth2_apps
from chalicelib.services.cursors import deployment_key
from chalicelib.services.oauth2_authorization_state import AuthorizationStateError, new_state, open_state, pkce_verifier
from chalicelib.store import accounts as account_store
from chalicelib.store import oauth2_authorizations as pending_store
from chalicelib.store.accounts import StoredAccount
from chalicelib.store.oauth2_apps import StoredApp

AUTHORIZATION_SECONDS = 15 * 60  # time for the user to consent; a state is refused after it
_SAFE_ERROR_CHARS = 64


@dataclass(frozen=True)
class AuthorizationRefusedError(Exception):
    """A callback that cannot go anywhere: its state was not issued by this deployment."""

    reason: str


def _app(app_id: str) -> StoredApp:
    try:
        app = oauth2_apps.get_app(app_id)
    except OAuth2AppNotFoundError:
        raise ValidationError(f"OAuth2 application {app_id!r} does not exist",
                              details={"type": "no such OAuth2 application"}) from None
    if not app.fields.get("enabled", True):
        raise ValidationError(f"OAuth2 application {app_id!r} is disabled", details={"type": "disabled"})
    return app


def start_authorization(form: AuthenticationForm, now: float | None = None) -> str:
    """The URL of the provider's consent page for ``form`` (stores the pending authorization)."""
    app = _app(form.type)
    existing = account_store.get_account(form.account) if account_store.account_exists(form.account) else None
    if existing is None and form.email is None:
        raise ValidationError("a new account needs its email address",
                              details={"email": "required when the account does not exist"})
    key = deployment_key()
    state, carried = new_state(time.time() if now is None else now, AUTHORIZATION_SECONDS, key=key)
    pending_store.put_authorization(carried.id, {
        "app": app.id, "account": form.account, "name": form.name, "email": form.email,
        "redirectUrl": form.redirectUrl, "expires": carried.expires})
    settings = oauth2_apps.provider_settings(app)
    return authorize_url(settings.authorization_url, client_id=app.fields["clientId"],
                         redirect_uri=app.fields["redirectUrl"], scopes=settings.scopes, state=state,
                         verifier=pkce_verifier(carried.id, key), provider=app.fields["provider"],
                         login_hint=form.email or _login_of(existing))


def _login_of(account: StoredAccount | None) -> str | None:
    """Who an existing account logs in as: the provider's consent page is pre-filled with it."""
    if account is None:
        return None
    return (account.oauth2 or {}).get("user") or account.email


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))


def _error_code(text: str) -> str:
    """A provider's ``error`` as given when it is a plain RFC 6749 code, else a generic one."""
    cleaned = "".join(ch for ch in text[:_SAFE_ERROR_CHARS] if ch.isalnum() or ch == "_")
    return cleaned or "authorizationFailed"


def complete_authorization(state: str, *, code: str | None, error: str | None, now: float | None = None) -> str:
    """Where to send the browser back after the provider's redirect (raises AuthorizationRefusedError
    only when there is no trustworthy destination)."""
    key = deployment_key()
    moment = time.time() if now is None else now
    try:
        carried = open_state(state, moment, key=key)
    except AuthorizationStateError as exc:
        if exc.reason != "expired":
            raise AuthorizationRefusedError(exc.reason) from None
        carried = open_state(state, 0, key=key)  # verified; only late
        pending = pending_store.get_authorization(carried.id)
        if pending is None:
            raise AuthorizationRefusedError("unknown") from None
        return _with_query(pending["redirectUrl"], {"error": "expired"})
    pending = pending_store.get_authorization(carried.id)
    if pending is None:
        raise AuthorizationRefusedError("unknown")
    back = pending["redirectUrl"]
    if not pending_store.use_authorization(carried.id):
        return _with_query(back, {"error": "alreadyUsed"})
    if error or not code:
        return _with_query(back, {"error": _error_code(error or "missingCode")})
    try:
        account_id, which = _connect(pending, code, pkce_verifier(carried.id, key))
    except _ConnectError as exc:
        return _with_query(back, {"error": exc.code})
    return _with_query(back, {"account": account_id, "state": which})


class _ConnectError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _connect(pending: dict[str, Any], code: str, verifier: str) -> tuple[str, str]:
    """Exchange the code and create or re-authorize the account: (account id, new|existing)."""
    try:
        app = oauth2_apps.get_app(pending["app"])
    except OAuth2AppNotFoundError:
        raise _ConnectError("appNotFound") from None
    settings = oauth2_apps.provider_settings(app)
    answer = exchange_code(settings.token_url, client_id=app.fields["clientId"],
                           client_secret=oauth2_apps.client_secret(app), code=code,
                           redirect_uri=app.fields["redirectUrl"], verifier=verifier)
    if answer.outcome != "granted" or not answer.access_token or not answer.refresh_token:
        # No refresh token: Google without prompt=consent, Microsoft without offline_access.
        logger.warning("authorization code exchange failed", extra={"app": app.id, "outcome": answer.outcome,
                                                                   "error": answer.error})
        raise _ConnectError("exchangeFailed")
    expires = (datetime.now(UTC) + timedelta(seconds=answer.expires_in)) if answer.expires_in else None
    refresh, access = SecretStr(answer.refresh_token), SecretStr(answer.access_token)
    account_id = pending["account"]
    try:
        if account_store.account_exists(account_id):
            # A re-authorization: the new refresh token replaces the old one and the account goes
            # back to connecting; the login user changes only when the form named one.
            login: dict[str, Any] = {"provider": app.id, "refreshToken": refresh, "accessToken": access,
                                     "expires": expires}
            changes: dict[str, Any] = {}
            if pending.get("email"):
                login["auth"] = OAuth2UserUpdate(user=pending["email"])
                changes["email"] = pending["email"]
            if pending.get("name"):
                changes["name"] = pending["name"]
            accounts.update_account(account_id, AccountUpdate(oauth2=OAuth2LoginUpdate(**login), **changes))
            return account_id, "existing"
        accounts.create_account(AccountCreate(
            account=account_id, name=pending.get("name"), email=pending["email"],
            oauth2=OAuth2Login(provider=app.id, auth=OAuth2User(user=pending["email"]), refreshToken=refresh,
                               accessToken=access, expires=expires)))
        return account_id, "new"
    except ApiError as exc:
        logger.warning("hosted authorization could not save the account", extra={"code": exc.code})
        raise _ConnectError("accountFailed") from None
