"""The one cursor codec: only cursors sealed with the deployment's key, for the same listing and query, open."""

from __future__ import annotations

import base64

import pytest

from chalicelib.errors import InvalidCursorError, InvalidIdError
from chalicelib.services import cursors as cursors_module
from chalicelib.services.cursors import (
    MessageCursor,
    decode_message_cursor,
    encode_message_cursor,
    message_cursor_scope,
    open_cursor,
    seal_cursor,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(32)


def test_a_sealed_cursor_opens_to_its_payload():
    cursor = seal_cursor("deliveries", b'{"position": {"day": "2026-12-01"}}', "scope-a", key=KEY)
    assert open_cursor("deliveries", cursor, "scope-a", key=KEY) == b'{"position": {"day": "2026-12-01"}}'


@pytest.mark.parametrize(("kind", "scope", "key"), [
    ("replay", "scope-a", KEY),           # another listing
    ("deliveries", "scope-b", KEY),       # another query of the same listing
    ("deliveries", "scope-a", OTHER_KEY),  # another deployment
])
def test_a_cursor_opens_only_for_its_listing_query_and_deployment(kind, scope, key):
    cursor = seal_cursor("deliveries", b"{}", "scope-a", key=KEY)
    with pytest.raises(InvalidCursorError) as refused:
        open_cursor(kind, cursor, scope, key=key)
    assert (refused.value.code, refused.value.status) == ("InvalidCursor", 422)


def every_single_character_change(cursor: str):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for index, character in enumerate(cursor):
        yield cursor[:index] + alphabet[(alphabet.index(character) + 1) % 64] + cursor[index + 1:]


def test_any_altered_character_is_refused():
    cursor = seal_cursor("deliveries", b'{"position": {"key": {"eventId": {"S": "evt_1"}}}}', key=KEY)
    for altered in every_single_character_change(cursor[:-1]):  # the last character carries padding bits
        with pytest.raises(InvalidCursorError):
            open_cursor("deliveries", altered, key=KEY)


@pytest.mark.parametrize("crafted", [
    "", "not base64!", "%00", "A", "=" * 8,
    base64.urlsafe_b64encode(b'{"day": "2026-12-01", "key": null}').decode(),
    base64.urlsafe_b64encode(b"\x01" + b"\x00" * 40).decode().rstrip("="),
    "A" * 2048,
])
def test_text_that_was_never_sealed_is_refused(crafted):
    with pytest.raises(InvalidCursorError):
        open_cursor("deliveries", crafted, key=KEY)


@pytest.fixture
def cursor_key(monkeypatch):
    """A fixed deployment key instead of the one stored in the settings table."""
    monkeypatch.setattr(cursors_module, "deployment_key", lambda: b"k" * 32)


def test_a_message_cursor_continues_only_the_listing_it_came_from(cursor_key):
    scope = message_cursor_scope("INBOX", '{"subject": "x"}')
    cursor = MessageCursor(uid_validity=9, before_uid=120, page=3, scope=scope)
    assert decode_message_cursor(encode_message_cursor(cursor), scope) == cursor
    others = (message_cursor_scope("Archive", '{"subject": "x"}'), message_cursor_scope("INBOX", '{"subject": "y"}'))
    for other in others:
        with pytest.raises(InvalidIdError) as refused:
            decode_message_cursor(encode_message_cursor(cursor), other)
        assert refused.value.code == "InvalidCursor"


def test_a_message_cursor_crafted_without_the_key_is_refused(cursor_key):
    # Given a cursor with well-formed contents for this very listing, but not sealed by the server
    scope = message_cursor_scope("INBOX")
    forged = base64.urlsafe_b64encode(b"\x01c\x09\x78" + scope + b"\x03").decode().rstrip("=")
    # Then it is refused like any other invalid cursor
    with pytest.raises(InvalidIdError) as refused:
        decode_message_cursor(forged, scope)
    assert refused.value.code == "InvalidCursor"
