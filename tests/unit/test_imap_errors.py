"""IMAP NO/BAD answers, as imapclient and imaplib report them, -> API errors."""

from __future__ import annotations

import imaplib
import socket

import pytest
from imapclient.exceptions import IMAPClientError, LoginError

from chalicelib.imap.errors import (
    error_from_response,
    error_from_transport,
    is_imap_status_line,
    refused_greeting,
    server_text,
    server_words,
)


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
    # Exchange Online, after a login it accepted: temporary, not a malformed command.
    (imaplib.IMAP4.error("SELECT command error: BAD [b'User is authenticated but not connected.']"), "INBOX", 503,
     "MailboxNotConnected"),
])
def test_server_answers_map_to_stable_codes(error, mailbox, status, code):
    mapped = error_from_response(error, command="X", mailbox=mailbox)
    assert (mapped.status, mapped.code) == (status, code)
    assert "secs)" not in mapped.details["serverResponse"]


@pytest.mark.parametrize(("command", "code"), [
    ("APPEND", "MailboxNotFound"), ("SELECT", "MailboxNotFound"), ("STATUS", "MailboxNotFound"),
    ("UID COPY", "MailboxNotFound"), ("CREATE", "ServerRejected"), ("UID FETCH", "ServerRejected"),
])
def test_courier_invalid_name_outside_its_namespace_is_a_missing_mailbox_except_to_create(command, code):
    # Courier: every folder is "INBOX.x"; "Nope" can never exist, and it says so in these words.
    mapped = error_from_response(no(command.lower(), "Invalid mailbox name."), command=command, mailbox="Nope")
    assert mapped.code == code


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


# -- what of a server's answer may be quoted back while connecting ----------------------------


class _ScriptedGreeting(imaplib.IMAP4):
    """imaplib reading ``raw`` as everything the server sends (then EOF)."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        super().__init__("scripted.test", 143)

    def _create_socket(self, timeout=None):
        ours, theirs = socket.socketpair()
        theirs.sendall(self._raw)
        theirs.close()
        return ours


def greeting_error(raw: bytes) -> imaplib.IMAP4.error:
    with pytest.raises(imaplib.IMAP4.error) as caught:
        _ScriptedGreeting(raw)
    return caught.value


@pytest.mark.parametrize(("raw", "quoted"), [
    (b"* BYE [UNAVAILABLE] Too many connections\r\n", "* BYE [UNAVAILABLE] Too many connections"),
    (b"* NO Server busy\r\n", "* NO Server busy"),
    (b"* BAD\r\n", "* BAD"),
    (b"SSH-2.0-OpenSSH_9.2\r\n", None),
    (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", None),
    (b"220 mx.test ESMTP Postfix\r\n", None),
    (b"+OK POP3 ready\r\n", None),
    (b"* HELLO not a status\r\n", None),
    (b"SSH-2.0-OpenSSH_9.2", None),  # no line end before EOF
    (b"", None),  # closed at once
])
def test_a_refused_greeting_is_quoted_only_when_it_is_imap(raw, quoted):
    assert refused_greeting(greeting_error(raw)) == quoted


@pytest.mark.parametrize(("error", "words"), [
    # imaplib's LOGIN passes the tagged NO's text through; imapclient wraps it in LoginError
    (LoginError(str(imaplib.IMAP4.error(b"[AUTHENTICATIONFAILED] Authentication failed."))),
     "[AUTHENTICATIONFAILED] Authentication failed."),
    (no("starttls", "[UNAVAILABLE] TLS unavailable"), "[UNAVAILABLE] TLS unavailable"),
    (imaplib.IMAP4.error("CAPABILITY command error: BAD [b'Error in IMAP command']"), "Error in IMAP command"),
    # imaplib's own words about a line it could not parse, or about no answer at all
    (LoginError("unexpected response: b'SSH-2.0-OpenSSH_9.2'"), None),
    (imaplib.IMAP4.abort("socket error: EOF"), None),
    (imaplib.IMAP4.error("server not IMAP4 compliant"), None),
])
def test_server_words_are_the_servers_answer_never_imaplibs_description(error, words):
    assert server_words(error) == words


@pytest.mark.parametrize(("line", "imap"), [
    ("* OK [CAPABILITY IMAP4rev1] ready", True), ("* ok ready", True), ("* PREAUTH logged in", True),
    ("* BYE", True), ("* OKAY", False), ("*OK", False), ("OK ready", False), ("SSH-2.0-OpenSSH_9.2", False),
])
def test_imap_status_lines(line, imap):
    assert is_imap_status_line(line) is imap
