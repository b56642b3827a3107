"""Preparing a saved draft for sending: only its header block changes (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.smtp.addresses import Mailbox
from chalicelib.smtp.compose import ComposeError
from chalicelib.smtp.drafts import prepare_draft, split_message

NOW = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def addresses(value: bytes) -> list[Mailbox]:
    return [Mailbox("", part.strip().decode()) for part in value.split(b",") if part.strip()]


DRAFT = (b"From: me@example.com\n"
         b"To: a@example.com,\n b@example.com\n"
         b"Bcc: hidden@example.com,\n\tother@example.com\n"
         b"Subject: A draft\n"
         b"Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
         b"Message-ID: <draft-1@example.com>\n"
         b"\n"
         b"Body line\n.leading dot\n")


def test_bcc_moves_to_the_envelope_and_the_date_becomes_now():
    prepared = prepare_draft(DRAFT, addresses, now=NOW)
    assert prepared.envelope.mail_from == "me@example.com"
    assert prepared.envelope.recipients == ("a@example.com", "b@example.com", "hidden@example.com",
                                            "other@example.com")
    assert b"hidden@example.com" not in prepared.raw and b"2024" not in prepared.raw
    assert prepared.raw.startswith(b"Date: Tue, 03 Nov 2026 10:00:00 +0000\r\n")
    assert prepared.message_id == "<draft-1@example.com>"
    assert prepared.bcc_header == b"Bcc: hidden@example.com,\r\n\tother@example.com\r\n"
    assert prepared.sent_copy().startswith(prepared.bcc_header)


def test_the_body_and_other_headers_stay_byte_for_byte_with_crlf_line_ends():
    prepared = prepare_draft(DRAFT, addresses, now=NOW)
    assert prepared.raw.endswith(b"\r\n\r\nBody line\r\n.leading dot\r\n")
    assert b"To: a@example.com,\r\n b@example.com\r\n" in prepared.raw
    assert b"\n" not in prepared.raw.replace(b"\r\n", b"")


def test_a_missing_message_id_is_added_in_the_senders_domain():
    prepared = prepare_draft(DRAFT.replace(b"Message-ID: <draft-1@example.com>\n", b""), addresses, now=NOW)
    assert prepared.message_id.endswith("@example.com>")
    assert f"Message-ID: {prepared.message_id}\r\n".encode() in prepared.raw


@pytest.mark.parametrize(("draft", "field"), [
    (b"To: a@example.com\n\nx", "draft.from"),
    (b"From: me@example.com\nSubject: x\n\nx", "draft.to"),
])
def test_a_draft_without_sender_or_recipients_is_refused(draft, field):
    with pytest.raises(ComposeError) as error:
        prepare_draft(draft, addresses)
    assert error.value.field == field


def test_split_message_keeps_folded_fields_whole():
    fields, body = split_message(b"A: 1\r\n 2\r\nB: 3\r\n\r\nbody")
    assert [(f.name, f.raw) for f in fields] == [("a", b"A: 1\r\n 2\r\n"), ("b", b"B: 3\r\n")]
    assert body == b"\r\nbody"
