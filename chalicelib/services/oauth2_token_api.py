"""``GET /v1/account/{account}/oauth-token``: an account's current access token, handed out.

For callers who also use the provider's own API (Gmail API, Microsoft Graph) with the tokens we
manage. Off unless ``IMAPLESS_OAUTH2_TOKEN_ENDPOINT_ENABLED`` (403 ``ApiEndpointDisabled``, as
EmailEngine answers), and only for unbound tokens (the route's access level): an account-bound
token is often given to the account's own user, who must not walk off with a provider token that
may reach more than mail.

Invariants:
- The token comes from :func:`chalicelib.services.oauth2_tokens.access_token`, the one refresh
  path (lease, rotation saved first), so handing it out never races the watcher's refresh.
- Only accounts whose tokens we manage have one: a caller-managed token is the caller's own, a
  password account has none (409 ``NotAnOAuth2Account``).
- A refresh the provider refuses is the mail server's failure it is for the mail API: 502 with
  the stable code (``OAuthTokenRevoked``, ``OAuthAppInvalid``); an outage stays 503.
- The token is never logged; the response says ``Cache-Control: no-store``.
"""

from __future__ import annotations

from datetime import datetime

from chalicelib.errors import ApiError, ForbiddenError, MailServerError
from chalicelib.schemas.oauth2 import OAuth2TokenOut
from chalicelib.services import accounts, oauth2_app_health, oauth2_tokens
from chalicelib.settings import get_settings
from chalicelib.store import accounts as account_store

DISABLED = "ApiEndpointDisabled"
NOT_OAUTH2 = "NotAnOAuth2Account"


def current_token(account_id: str) -> OAuth2TokenOut:
    if not get_settings().oauth2_token_endpoint_enabled:
        raise ForbiddenError("this endpoint is disabled; set IMAPLESS_OAUTH2_TOKEN_ENDPOINT_ENABLED=true to enable it",
                             code=DISABLED)
    stored = account_store.get_account(account_id)
    if not accounts.is_oauth2_app(stored) or stored.oauth2 is None:
        managed_by_caller = (stored.imap or {}).get("credentials") == accounts.ACCESS_TOKEN
        what = "its access token is the one you gave it" if managed_by_caller else "it logs in with a password"
        raise ApiError(f"the account has no OAuth2 tokens of ours to hand out: {what}", code=NOT_OAUTH2, status=409)
    try:
        token = oauth2_tokens.access_token(account_id)
    except MailServerError as exc:
        oauth2_app_health.mark_app_invalid(account_id, exc)
        if exc.status != 503:  # a refusal by the provider, not by the caller's request
            exc.status = 502
        raise
    # Re-read: the refresh above saved the new expiry and scopes.
    meta = account_store.get_account(account_id).oauth2 or stored.oauth2
    expires = meta.get("expires")
    return OAuth2TokenOut(account=account_id, user=meta["user"], accessToken=token, provider=meta["app"],
                          expires=datetime.fromisoformat(expires) if expires else None, scopes=meta.get("scopes"))
