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

The message listings' cursor (:class:`MessageCursor`) is defined here too; its payload:
UIDVALIDITY, the exclusive upper UID bound of the next page, a 4-byte digest of path and
query, and the page number (varints around the digest).

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
from dataclasses import dataclass

from chalicelib.errors import InvalidCursorError
from chalicelib.security.envelope import open_secret, seal_secret
from chalicelib.store import settings as settings_store
from chalicelib.varint import read_varint, write_varint

VERSION = 1
TAG_BYTES = 16
KEY_BYTES = 32
KEY_SETTING = "cursorKey"
KEY_CONTEXT = {"purpose": "cursor-key"}
_ALPHABET = re.compile(r"^[A-Za-z0-9_-]+$")
MESSAGES_KIND = "messages"
SCOPE_BYTES = 4


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


# -- the message listings' cursor --------------------------------------------------------


@dataclass(frozen=True)
class MessageCursor:
    uid_validity: int
    before_uid: int  # the next page holds UIDs strictly below this
    page: int
    scope: bytes  # digest of (path, query): a cursor only continues the listing it came from


def message_cursor_scope(path: str, query: str = "") -> bytes:
    return hashlib.sha256(f"{path}\0{query}".encode()).digest()[:SCOPE_BYTES]


def encode_message_cursor(cursor: MessageCursor) -> str:
    """The ``nextPageCursor`` of a message listing."""
    if min(cursor.uid_validity, cursor.before_uid, cursor.page) < 0:
        raise ValueError("negative")
    payload = bytearray()
    write_varint(payload, cursor.uid_validity)
    write_varint(payload, cursor.before_uid)
    payload += cursor.scope
    write_varint(payload, cursor.page)
    return seal_cursor(MESSAGES_KIND, bytes(payload))


def _read_number(payload: bytes, position: int) -> tuple[int, int]:
    value, position = read_varint(payload, position)
    if value >= 2**64:
        raise ValueError("varint too large")
    return value, position


def decode_message_cursor(value: str, scope: bytes) -> MessageCursor:
    """A cursor of the message listing identified by ``scope``; 400 InvalidCursor otherwise."""
    payload = open_cursor(MESSAGES_KIND, value)
    try:
        uid_validity, position = _read_number(payload, 0)
        before_uid, position = _read_number(payload, position)
        cursor_scope, position = payload[position:position + SCOPE_BYTES], position + SCOPE_BYTES
        if len(cursor_scope) != SCOPE_BYTES:
            raise ValueError("truncated")
        page, position = _read_number(payload, position)
        if position != len(payload):
            raise ValueError("trailing bytes")
    except ValueError:
        raise InvalidCursorError("cursor is malformed", details={"cursor": "malformed"}) from None
    if cursor_scope != scope:
        raise InvalidCursorError("cursor belongs to another mailbox or query", details={"cursor": "another listing"})
    return MessageCursor(uid_validity, before_uid, page, cursor_scope)
