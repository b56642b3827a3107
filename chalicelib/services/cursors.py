"""Page cursors: opaque to clients, authenticated by the deployment, one codec for every listing.

A cursor carries server state (a DynamoDB key, a UID bound) that the next request acts on.
A client that could forge one could point a query at keys of its choosing, so every cursor
is sealed with an HMAC under a key of the deployment and only cursors this deployment
issued are accepted::

    cursor = base64url( version (1 byte) | payload | tag (16 bytes) )
    tag    = HMAC-SHA256(key, version | kind | 0x00 | scope | 0x00 | payload)[:16]

``kind`` names the listing ("deliveries", "messages", ...) and ``scope`` the query the
cursor continues (filters, mailbox): a cursor of one listing or query is refused by every
other one. Payloads are not encrypted (they hold nothing secret: keys of the caller's own
items); the tag only makes them unforgeable.

The key: 32 random bytes made on first use and stored sealed (envelope encryption under
the deployment's KMS key, or the local key file under ``make run``) in the settings table.
Two processes creating it at once race on a conditional put; the loser reads the winner's.
It is read once per warm process. Replacing it (deleting the setting) only invalidates the
cursors in flight: clients start their listing again.

Failure mode: anything that does not decode and verify is 400 ``InvalidCursor``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import secrets

from chalicelib.errors import InvalidCursorError
from chalicelib.security.envelope import open_secret, seal_secret
from chalicelib.store import settings as settings_store

VERSION = 1
TAG_BYTES = 16
KEY_BYTES = 32
KEY_SETTING = "cursorKey"
KEY_CONTEXT = {"purpose": "cursor-key"}
_ALPHABET = re.compile(r"^[A-Za-z0-9_-]+$")


@functools.lru_cache(maxsize=1)
def deployment_key() -> bytes:
    """The cursor key of this deployment, created (once, race-free) on first use."""
    while True:
        sealed = settings_store.get_sealed(KEY_SETTING)
        if sealed is not None:
            return bytes.fromhex(open_secret(sealed, KEY_CONTEXT))
        candidate = secrets.token_bytes(KEY_BYTES)
        if settings_store.put_sealed(KEY_SETTING, seal_secret(candidate.hex(), KEY_CONTEXT), if_absent=True):
            return candidate
        # Another process stored its key first: read that one.


def _tag(key: bytes, kind: str, scope: str, payload: bytes) -> bytes:
    message = bytes([VERSION]) + kind.encode() + b"\0" + scope.encode() + b"\0" + payload
    return hmac.new(key, message, hashlib.sha256).digest()[:TAG_BYTES]


def seal_cursor(kind: str, payload: bytes, scope: str = "", *, key: bytes | None = None) -> str:
    """The cursor of ``payload`` for the listing ``kind`` with query ``scope``."""
    tag = _tag(key or deployment_key(), kind, scope, payload)
    return base64.urlsafe_b64encode(bytes([VERSION]) + payload + tag).rstrip(b"=").decode("ascii")


def open_cursor(kind: str, cursor: str, scope: str = "", *, field: str = "cursor",
                key: bytes | None = None) -> bytes:
    """The payload of a cursor this deployment sealed for ``kind``/``scope``; 400 InvalidCursor otherwise."""
    refused = InvalidCursorError("cursor is not one this API issued for this query",
                                 details={field: "not a cursor of this listing and query"})
    if not _ALPHABET.match(cursor or ""):
        raise refused
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise refused from None
    if len(raw) < 1 + TAG_BYTES or raw[0] != VERSION:
        raise refused
    payload, tag = raw[1:-TAG_BYTES], raw[-TAG_BYTES:]
    if not hmac.compare_digest(tag, _tag(key or deployment_key(), kind, scope, payload)):
        raise refused
    return payload
