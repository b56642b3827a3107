"""Opaque message, attachment and text ids: round trips and what is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.errors import InvalidIdError
from chalicelib.message_ids import (
    AttachmentRef,
    MessageRef,
    TextRef,
    decode_attachment_id,
    decode_message_id,
    decode_text_id,
    encode_attachment_id,
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
