"""IMAP NO/BAD answers, as imapclient and imaplib report them, -> API errors."""

from __future__ import annotations

import imaplib

import pytest
from imapclient.exceptions import IMAPClientError

from chalicelib.imap.errors import error_from_response, error_from_transport, server_text


def no(command: str, text: str) -> IMAPClientError:
    """What imapclient raises for a tagged NO (its ``_check_resp``)."""
    return IMAPClientError(f"{command} failed: {text}")


@pytest.mark.parametrize(("error", "mailbox", "status", "code"), [
    (no("select", "Mailbox doesn't exist: Nope (0.001 + 0.000 secs)."), "Nope", 404, "MailboxNotFound"),
    (no("append", "[TRYCREATE] Mailbox doesn't exist: Nope (0.001 + 0.000 secs)."), "Nope", 404, "MailboxNotFound"),
    (no("select", "[NONEXISTENT] Unknown Mailbox: Nope (Failure)"), "Nope", 404, "MailboxNotFound"),
    (no("create", "[ALREADYEXISTS] Mailbox already exists (0.001 + 0.000 secs)."), "X", 409, "MailboxExists"),
    (no("append", "[OVERQUOTA] Quota exceeded (mailbox for user is full) (0.002 + 0.000 secs)."), "INBOX", 507,
     "OverQuota"),
    (no("append", "Mailbox size limit exceeded"), "INBOX", 507, "OverQuota"),
    (no("store", "[READ-ONLY] Mailbox is read-only"), "INBOX", 403, "MailboxReadOnly"),
    (no("delete", "[NOPERM] Permission denied"), "Shared", 403, "NoPermission"),
    (no("select", "[INUSE] Mailbox is locked"), "INBOX", 503, "MailboxInUse"),
    (no("select", "[UNAVAILABLE] Try later"), "INBOX", 503, "ServerUnavailable"),
    (no("fetch", "[SERVERBUG] Internal error occurred"), None, 502, "ServerError"),
    (no("create", "[CANNOT] Invalid mailbox name"), "a*b", 422, "ServerRejected"),
    (no("delete", "INBOX can't be deleted (0.001 + 0.000 secs)."), "INBOX", 422, "ServerRejected"),
    (imaplib.IMAP4.error("FETCH command error: BAD [b'Error in IMAP command UID FETCH: Unknown parameter: EMAILID "
                         "(0.001 + 0.000 secs).']"), None, 502, "ProtocolError"),
])
def test_server_answers_map_to_stable_codes(error, mailbox, status, code):
    mapped = error_from_response(error, command="X", mailbox=mailbox)
    assert (mapped.status, mapped.code) == (status, code)
    assert "secs)" not in mapped.details["serverResponse"]


def test_missing_mailbox_words_only_count_when_a_mailbox_was_named():
    mapped = error_from_response(no("fetch", "Message not found"), command="UID FETCH")
    assert mapped.code == "ServerRejected"


def test_server_text_strips_the_wrapping_and_dovecot_timing():
    kind, text, code = server_text(no("append", "[OVERQUOTA] Quota exceeded (0.002 + 0.000 + 0.001 secs)."))
    assert (kind, text, code) == ("NO", "[OVERQUOTA] Quota exceeded", "OVERQUOTA")


@pytest.mark.parametrize(("error", "spent", "status", "code"), [
    (TimeoutError("timed out"), False, 504, "UpstreamTimeout"),
    (imaplib.IMAP4.abort("socket error: EOF"), True, 504, "UpstreamTimeout"),
    (imaplib.IMAP4.abort("socket error: EOF"), False, 502, "ConnectionLost"),
    (ConnectionResetError(104, "reset"), False, 502, "ConnectionLost"),
])
def test_transport_failures(error, spent, status, code):
    mapped = error_from_transport(error, command="UID FETCH", budget_seconds=25, budget_spent=spent)
    assert (mapped.status, mapped.code) == (status, code)
