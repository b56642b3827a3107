"""When to refresh an account's access token, and what a token endpoint's answer means. Pure.

Refresh decision (after taking the account's refresh lease, on the tokens as stored now)::

    stored access token            asked because                  refresh?
    none                           anything                       yes
    the one a server rejected      the server rejected it         yes (at once, whatever its expiry)
    another one                    the server rejected an older   no: someone else refreshed already
    expires within REFRESH_AHEAD   it is due                      yes
    expires later, or no expiry    it is due                      no (a caller's token without expiry
                                                                      is used until a server rejects it)

Token endpoint answers (RFC 6749 5.1/5.2)::

    answer                                           outcome       account
    200 with access_token                            granted       tokens saved (a new refresh token first)
    400 invalid_grant / invalid_scope / other 4xx    revoked       authenticationError OAuthTokenRevoked
    401, or invalid_client / unauthorized_client     app_invalid   authenticationError OAuthAppInvalid
    no answer, timeout, 429, 5xx, 200 not JSON/no    temporary     back off and retry; never
      access_token                                                 authenticationError
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

REFRESH_AHEAD_SECONDS = 300
TokenOutcome = Literal["granted", "revoked", "app_invalid", "temporary"]
_APP_ERRORS = frozenset({"invalid_client", "unauthorized_client"})


def token_fingerprint(token: str) -> str:
    """Names a token without holding it (what a caller says was rejected)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StoredTokens:
    access_token_fingerprint: str | None
    expires: datetime | None


def refresh_needed(tokens: StoredTokens, now: datetime, *, rejected: str | None = None,
                   ahead_seconds: float = REFRESH_AHEAD_SECONDS) -> bool:
    """Whether to ask the token endpoint now (``rejected``: the fingerprint a server refused)."""
    if tokens.access_token_fingerprint is None:
        return True
    if rejected is not None:
        return tokens.access_token_fingerprint == rejected
    if tokens.expires is None:
        return False
    return tokens.expires - now <= timedelta(seconds=ahead_seconds)


@dataclass(frozen=True)
class TokenAnswer:
    outcome: TokenOutcome
    access_token: str | None = None
    refresh_token: str | None = None  # a rotated one, when the provider sent it
    expires_in: float | None = None
    scope: str | None = None
    error: str | None = None  # the provider's error code and words, never a token

    def __repr__(self) -> str:  # tokens stay out of logs and tracebacks
        return f"TokenAnswer(outcome={self.outcome!r}, error={self.error!r})"


def classify_token_answer(status: int | None, body: bytes | None) -> TokenAnswer:
    """What a token endpoint's answer says (``status`` None: no answer at all)."""
    if status is None:
        return TokenAnswer("temporary", error="the token endpoint did not answer")
    data = _json_object(body)
    if status == 200:
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            return TokenAnswer("temporary", error="the token endpoint answered 200 without an access token")
        refresh = data.get("refresh_token")
        expires_in = data.get("expires_in")
        scope = data.get("scope")
        return TokenAnswer("granted", access_token=token,
                           refresh_token=refresh if isinstance(refresh, str) and refresh else None,
                           expires_in=float(expires_in) if isinstance(expires_in, (int, float, str))
                           and _is_number(expires_in) else None,
                           scope=scope if isinstance(scope, str) else None)
    code = data.get("error") if isinstance(data.get("error"), str) else None
    words = _words(code, data.get("error_description"), status)
    if status == 429 or status >= 500:
        return TokenAnswer("temporary", error=words)
    if status == 401 or code in _APP_ERRORS:
        return TokenAnswer("app_invalid", error=words)
    if 400 <= status < 500:
        return TokenAnswer("revoked", error=words)
    return TokenAnswer("temporary", error=words)


def _json_object(body: bytes | None) -> dict[str, Any]:
    try:
        data = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def _words(code: str | None, description: object, status: int) -> str:
    text = f"{code or f'HTTP {status}'}"
    if isinstance(description, str) and description:
        text += f": {description[:300]}"
    return text
