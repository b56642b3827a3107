"""Access tokens for accounts whose OAuth2 tokens we manage (``credentials: "oauth2App"``).

:func:`access_token` returns a current access token for an account, refreshing it first
when :func:`~chalicelib.oauth2.refresh_rules.refresh_needed` says so::

    read tokens ── not needed ──▶ use the stored access token
        │ needed
        ▼
    take the account's refresh lease (store.oauth2_tokens) ── held elsewhere ──▶ wait, re-read:
        │                                                    someone refreshed ─▶ use theirs
        ▼
    re-read ── no longer needed (someone just refreshed) ──▶ use it
        │
        ▼
    POST grant_type=refresh_token ── granted ──▶ save (sealed: rotated refresh token + access
        │                                        token, compare-and-set) ──▶ then use it
        ├─ revoked      ──▶ MailServerError OAuthTokenRevoked (the provider's words)
        ├─ app_invalid  ──▶ MailServerError OAuthAppInvalid
        └─ temporary    ──▶ MailServerError AuthenticationUnavailable (503; retried later)

Invariants:
- At most one process refreshes an account at a time (the lease, across API Lambdas and
  watchers); whoever waits re-reads and uses the token the holder saved.
- A new refresh token (Microsoft rotates them on every refresh) is saved, sealed, before the
  access token that came with it is returned to anyone.
- Tokens are sealed at rest and never logged, raised or returned except to the adapters' login.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.errors import MailServerError
from chalicelib.oauth2.refresh_rules import StoredTokens, TokenAnswer, refresh_needed, token_fingerprint
from chalicelib.oauth2.token_endpoint import refresh_access_token
from chalicelib.security.envelope import open_secret, seal_secret
from chalicelib.services import oauth2_apps
from chalicelib.settings import get_settings
from chalicelib.store import accounts as account_store
from chalicelib.store import oauth2_tokens as token_store
from chalicelib.store.accounts import StoredAccount
from chalicelib.store.oauth2_apps import StoredApp

LEASE_SECONDS = 30.0  # longer than one token request (10 s timeout) plus the save
LEASE_WAIT_SECONDS = 15.0
LEASE_POLL_SECONDS = 0.2
PROTOCOL = "oauth2"
REVOKED = "OAuthTokenRevoked"
APP_INVALID = "OAuthAppInvalid"
UNAVAILABLE = "AuthenticationUnavailable"


@dataclass
class Tokens:
    refresh_token: str
    access_token: str | None
    expires: datetime | None

    def __repr__(self) -> str:
        return f"Tokens(expires={self.expires!r})"

    def state(self) -> StoredTokens:
        fingerprint = token_fingerprint(self.access_token) if self.access_token else None
        return StoredTokens(fingerprint, self.expires)


def _context(account_id: str) -> dict[str, str]:
    return {"purpose": "account-oauth2-tokens", "account": account_id}


def seal_tokens(account_id: str, tokens: Tokens) -> str:
    return seal_secret(json.dumps({"refreshToken": tokens.refresh_token, "accessToken": tokens.access_token}),
                       _context(account_id))


def open_tokens(stored: StoredAccount) -> Tokens:
    if stored.sealed_oauth2 is None or stored.oauth2 is None:
        raise MailServerError("the account has no OAuth2 tokens", code=REVOKED, protocol=PROTOCOL)
    opened = json.loads(open_secret(stored.sealed_oauth2, _context(stored.account)))
    expires = stored.oauth2.get("expires")
    return Tokens(opened["refreshToken"], opened.get("accessToken"),
                  datetime.fromisoformat(expires) if expires else None)


def metadata(app_id: str, user: str, expires: datetime | None, scopes: list[str] | None) -> dict[str, Any]:
    return {"app": app_id, "user": user, "expires": expires.isoformat() if expires else None, "scopes": scopes}


def _failure(answer: TokenAnswer, app: StoredApp) -> MailServerError:
    if answer.outcome == "revoked":
        return MailServerError("the provider refused the refresh token (revoked, expired or no longer "
                               "consented): authorize the account again", code=REVOKED, protocol=PROTOCOL,
                               server_response=answer.error)
    if answer.outcome == "app_invalid":
        return MailServerError(f"the provider refused OAuth2 application {app.id!r} (client id or secret)",
                               code=APP_INVALID, protocol=PROTOCOL, server_response=answer.error)
    return MailServerError("the OAuth2 token endpoint is unavailable; retrying later", code=UNAVAILABLE,
                           protocol=PROTOCOL, server_response=answer.error, status=503)


def request_tokens(app: StoredApp, tokens: Tokens, now: datetime | None = None) -> tuple[Tokens, list[str] | None]:
    """New tokens from the application's token endpoint (the refresh token kept unless rotated),
    and the granted scopes when the provider named them; MailServerError when refused."""
    if not app.fields.get("enabled", True):
        raise MailServerError(f"OAuth2 application {app.id!r} is disabled", code=APP_INVALID, protocol=PROTOCOL)
    settings = oauth2_apps.provider_settings(app)
    # Microsoft wants the scopes on a refresh; Google and most others reuse the granted ones.
    scopes = settings.scopes if app.fields["provider"] == "outlook" else ()
    answer = refresh_access_token(settings.token_url, client_id=app.fields["clientId"],
                                  client_secret=oauth2_apps.client_secret(app), refresh_token=tokens.refresh_token,
                                  scopes=scopes)
    if answer.outcome != "granted" or answer.access_token is None:
        raise _failure(answer, app)
    moment = now or datetime.now(UTC)
    expires = moment + timedelta(seconds=answer.expires_in) if answer.expires_in is not None else None
    granted = Tokens(answer.refresh_token or tokens.refresh_token, answer.access_token, expires)
    return granted, answer.scope.split() if answer.scope else None


def access_token(account_id: str, *, rejected: str | None = None) -> str:
    """A current access token of the account (``rejected``: the access token a server just refused)."""
    rejected_id = token_fingerprint(rejected) if rejected else None
    ahead = get_settings().oauth2_refresh_ahead_seconds

    def still_good(tokens: Tokens) -> str | None:
        needed = refresh_needed(tokens.state(), datetime.now(UTC), rejected=rejected_id, ahead_seconds=ahead)
        return None if needed else tokens.access_token

    stored = account_store.get_account(account_id)
    tokens = open_tokens(stored)
    if good := still_good(tokens):
        return good
    owner = secrets.token_hex(8)
    waited_until = time.monotonic() + LEASE_WAIT_SECONDS
    while not token_store.take_lease(account_id, owner, time.time(), LEASE_SECONDS):
        if time.monotonic() > waited_until:
            raise MailServerError("another process is refreshing this account's access token; retrying later",
                                  code=UNAVAILABLE, protocol=PROTOCOL, status=503)
        time.sleep(LEASE_POLL_SECONDS)
        stored = account_store.get_account(account_id)
        tokens = open_tokens(stored)
        if good := still_good(tokens):
            return good
    try:
        # Re-read under the lease: the holder before us may have just refreshed.
        stored = account_store.get_account(account_id)
        tokens = open_tokens(stored)
        if good := still_good(tokens):
            return good
        assert stored.oauth2 is not None  # open_tokens checked
        app = oauth2_apps.get_app(stored.oauth2["app"])
        granted, scopes = request_tokens(app, tokens)
        saved = token_store.save_tokens(
            account_id, seal_tokens(account_id, granted),
            {**stored.oauth2, **metadata(app.id, stored.oauth2["user"], granted.expires,
                                         scopes or stored.oauth2.get("scopes"))},
            expected_sealed=stored.sealed_oauth2)
        if not saved:
            # Changed under us (a PUT with a new refresh token): ours may be stale; try again later.
            raise MailServerError("the account's tokens changed while refreshing; retrying later",
                                  code=UNAVAILABLE, protocol=PROTOCOL, status=503)
        assert granted.access_token is not None
        return granted.access_token
    finally:
        token_store.release_lease(account_id, owner)
