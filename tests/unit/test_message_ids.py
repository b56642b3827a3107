"""Opaque message, attachment, text and cursor ids: round trips and what is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.errors import InvalidIdError
from chalicelib.services.message_ids import (
    AttachmentRef,
    Cursor,
    MessageRef,
    TextRef,
    cursor_scope,
    decode_attachment_id,
    decode_cursor,
    decode_message_id,
    decode_text_id,
    encode_attachment_id,
    encode_cursor,
    encode_message_id,
    encode_text_id,
)

paths = st.text(min_size=1, max_size=200).filter(lambda p: "\x00" not in p)
numbers = st.integers(min_value=1, max_value=2**32 - 1)
sections = st.lists(st.integers(1, 40), min_size=1, max_size=6).map(lambda parts: ".".join(map(str, parts)))


@given(paths, numbers, numbers)
def test_message_ids_round_trip_and_stay_url_safe(path, uid_validity, uid):
    ref = MessageRef(path, uid_validity, uid)
    encoded = encode_message_id(ref)
    assert decode_message_id(encoded) == ref
    assert encoded.replace("-", "").replace("_", "").isalnum()


@given(paths, numbers, numbers, sections)
def test_attachment_ids_round_trip(path, uid_validity, uid, section):
    ref = AttachmentRef(MessageRef(path, uid_validity, uid), section)
    assert decode_attachment_id(encode_attachment_id(ref)) == ref


@given(paths, numbers, numbers, st.lists(sections, max_size=5))
def test_text_ids_round_trip(path, uid_validity, uid, parts):
    ref = TextRef(MessageRef(path, uid_validity, uid), tuple(parts))
    assert decode_text_id(encode_text_id(ref)) == ref


def test_ids_of_one_kind_are_refused_as_another():
    message_id = encode_message_id(MessageRef("INBOX", 7, 42))
    attachment_id = encode_attachment_id(AttachmentRef(MessageRef("INBOX", 7, 42), "2"))
    with pytest.raises(InvalidIdError) as refused:
        decode_message_id(attachment_id)
    assert refused.value.code == "InvalidMessageId"
    with pytest.raises(InvalidIdError) as refused:
        decode_attachment_id(message_id)
    assert refused.value.code == "InvalidAttachmentId"


@pytest.mark.parametrize("value", ["", "!!!", "AQ", "AW0", "a" * 3000, "AW0AAA", "AW0BAQVJTkJPWA" + "A"])
def test_malformed_message_ids_are_400(value):
    with pytest.raises(InvalidIdError) as refused:
        decode_message_id(value)
    assert (refused.value.status, refused.value.code) == (422, "InvalidMessageId")


def test_an_attachment_section_must_be_a_section_number():
    bad = encode_attachment_id(AttachmentRef(MessageRef("INBOX", 1, 1), "1"))[:-2] + "Lg"  # "." appended
    with pytest.raises(InvalidIdError):
        decode_attachment_id(bad)


@pytest.fixture
def cursor_key(monkeypatch):
    """A fixed deployment key instead of the one stored in the settings table."""
    from chalicelib.services import cursors

    monkeypatch.setattr(cursors, "deployment_key", lambda: b"k" * 32)


def test_cursor_continues_only_the_listing_it_came_from(cursor_key):
    scope = cursor_scope("INBOX", '{"subject": "x"}')
    cursor = Cursor(uid_validity=9, before_uid=120, page=3, scope=scope)
    assert decode_cursor(encode_cursor(cursor), scope) == cursor
    for other in (cursor_scope("Archive", '{"subject": "x"}'), cursor_scope("INBOX", '{"subject": "y"}')):
        with pytest.raises(InvalidIdError) as refused:
            decode_cursor(encode_cursor(cursor), other)
        assert refused.value.code == "InvalidCursor"


def test_a_cursor_crafted_without_the_key_is_refused(cursor_key):
    # Given a cursor with well-formed contents for this very listing, but not sealed by the server
    import base64

    scope = cursor_scope("INBOX")
    forged = base64.urlsafe_b64encode(b"\x01c\x09\x78" + scope + b"\x03").decode().rstrip("=")
    # Then it is refused like any other invalid cursor
    with pytest.raises(InvalidIdError) as refused:
        decode_cursor(forged, scope)
    assert refused.value.code == "InvalidCursor"
