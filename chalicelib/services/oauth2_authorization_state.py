"""The ``state`` of a hosted authorization and the PKCE verifier derived from it (pure, no I/O).

A hosted authorization sends the user's browser to the provider with ``state`` and the PKCE
challenge, and the provider sends ``state`` back to ``GET /oauth``. ``state`` must be
unforgeable, expire, and lead back to what the form asked for::

    state    = cursor("oauth2State", expires (8 bytes, unix seconds) | id (16 random bytes))
    verifier = base64url(HMAC-SHA256(key, "oauth2-pkce" | 0x00 | id))        (43 characters)

The tag is the page cursors' HMAC under the deployment key (:mod:`chalicelib.services.cursors`):
one way to sign what a client carries for us. The PKCE verifier is never stored nor put in a
URL: only this deployment can derive it from the id, and only at callback time. What the form
asked for (account, redirect URL, ...) is kept server-side under the id, taken once (that is
what makes a state single-use; see :mod:`chalicelib.store.oauth2_authorizations`).

Failure modes: :class:`AuthorizationStateError` with a stable ``reason`` (``invalid``,
``expired``) for anything that does not verify or has expired.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from chalicelib.errors import InvalidCursorError
from chalicelib.services.cursors import open_cursor, seal_cursor

STATE_KIND = "oauth2State"
ID_BYTES = 16
_EXPIRY_BYTES = 8


class AuthorizationStateError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class AuthorizationState:
    id: str  # hex of the random id: the key of the pending authorization
    expires: int  # unix seconds


def new_state(now: float, lifetime_seconds: int, *, key: bytes | None = None) -> tuple[str, AuthorizationState]:
    """A fresh state string and what it carries."""
    raw_id = secrets.token_bytes(ID_BYTES)
    expires = int(now) + lifetime_seconds
    sealed = seal_cursor(STATE_KIND, expires.to_bytes(_EXPIRY_BYTES, "big") + raw_id, key=key)
    return sealed, AuthorizationState(raw_id.hex(), expires)


def open_state(state: str, now: float, *, key: bytes | None = None) -> AuthorizationState:
    """What a state this deployment issued carries; AuthorizationStateError if forged or expired."""
    try:
        payload = open_cursor(STATE_KIND, state, field="state", key=key)
    except InvalidCursorError:
        raise AuthorizationStateError("invalid") from None
    if len(payload) != _EXPIRY_BYTES + ID_BYTES:
        raise AuthorizationStateError("invalid")
    expires = int.from_bytes(payload[:_EXPIRY_BYTES], "big")
    if now >= expires:
        raise AuthorizationStateError("expired")
    return AuthorizationState(payload[_EXPIRY_BYTES:].hex(), expires)


def pkce_verifier(state_id: str, key: bytes) -> str:
    """The PKCE code verifier of the authorization ``state_id`` (RFC 7636: 43 unreserved characters)."""
    digest = hmac.new(key, b"oauth2-pkce\0" + bytes.fromhex(state_id), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
