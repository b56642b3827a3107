"""API tokens: issue, authenticate, list, revoke.

A token is 32 random bytes (64 hex digits), shown once at creation. Only its SHA-256
digest is stored, so a leaked table does not leak working tokens.

Scopes: ``*`` may do everything (including token management); ``api`` may use accounts
and mail. A token bound to an account may only touch that account.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from chalicelib.errors import ForbiddenError, UnauthorizedError
from chalicelib.settings import get_settings
from chalicelib.store import tokens as token_store
from chalicelib.store.tokens import ADMIN_SCOPE, StoredToken
from chalicelib.ttlcache import TtlCache

TOKEN_BYTES = 32
API_SCOPE = "api"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, scopes and optional account binding."""

    token_id: str
    scopes: tuple[str, ...]
    account: str | None

    @property
    def is_admin(self) -> bool:
        return ADMIN_SCOPE in self.scopes and self.account is None

    def require_admin(self) -> None:
        if not self.is_admin:
            raise ForbiddenError("this operation needs a token with the '*' scope not bound to an account")

    def require_api(self) -> None:
        if ADMIN_SCOPE not in self.scopes and API_SCOPE not in self.scopes:
            raise ForbiddenError("this token has no 'api' scope")

    def require_unbound(self) -> None:
        """For operations spanning accounts (list, create)."""
        self.require_api()
        if self.account is not None:
            raise ForbiddenError(f"this token is bound to account {self.account!r}")

    def require_account(self, account_id: str) -> None:
        self.require_api()
        if self.account is not None and self.account != account_id:
            raise ForbiddenError(f"this token is bound to account {self.account!r}",
                                 details={"account": account_id})


def digest_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(description: str, scopes: list[str], account: str | None = None) -> tuple[StoredToken, str]:
    """Issue a new token; returns the record and the token itself (never stored)."""
    token = secrets.token_hex(TOKEN_BYTES)
    return token_store.put_token(digest_token(token), description, sorted(set(scopes)), account), token


def register_token(token: str, description: str, scopes: list[str] | None = None,
                   account: str | None = None) -> StoredToken:
    """Store a caller-chosen token (``API_TOKEN`` of the local runner); idempotent."""
    if len(token) < 16:
        raise ValueError("a token must be at least 16 characters long")
    digest = digest_token(token)
    existing = token_store.find_by_digest(digest)
    if existing is not None:
        return existing
    return token_store.put_token(digest, description, sorted(set(scopes or [ADMIN_SCOPE])), account)


# Verified tokens by digest (never the token itself): a warm process skips the store read
# for IMAPLESS_TOKEN_CACHE_SECONDS. Unknown tokens are never cached.
_verified = TtlCache[Principal](max_entries=1024)


def authenticate(token: str | None) -> Principal:
    if not token:
        raise UnauthorizedError("missing API token: send 'Authorization: Bearer <token>'")
    digest = digest_token(token)

    def lookup() -> Principal:
        stored = token_store.find_by_digest(digest)
        if stored is None:
            raise UnauthorizedError("invalid API token")
        return Principal(token_id=stored.id, scopes=stored.scopes, account=stored.account)

    return _verified.get_or_load(digest, lookup, get_settings().token_cache_seconds)


def forget_verified_tokens() -> None:
    """Drop cached verifications (a token or an account was removed in this process)."""
    _verified.clear()


def list_tokens() -> list[StoredToken]:
    return token_store.list_tokens()


def revoke_token(token_id: str) -> None:
    """Revoke a token; 409 ``LastAdminToken`` for the last unbound admin token."""
    token_store.delete_token(token_id)
    forget_verified_tokens()
