"""User text reaches IMAP only as a quoted string or a literal: the exact bytes on the wire.

A loopback server of the test's own (:mod:`tests.support.imap_recorder`) records every
command our client sends, and honours literals as a real server does, so a term sent bare
that announces a literal (``{5}``) would hang here exactly as against Dovecot.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from chalicelib.errors import ApiError
from chalicelib.imap import mailboxes, message_changes
from chalicelib.imap.connection import Deadline, ImapConnection
from chalicelib.imap.session import connect
from chalicelib.security.transport import MailServer, TlsOptions
from chalicelib.services.messages import find_uids
from tests.support.imap_recorder import ImapRecorder

BUDGET_SECONDS = 3.0


@pytest.fixture(params=["IMAP4rev1", "IMAP4rev1 LITERAL+"], ids=["synchronizing", "literal-plus"])
def recorder(request) -> Iterator[ImapRecorder]:
    server = ImapRecorder(capabilities=request.param).start()
    yield server
    server.close()


@pytest.fixture
def conn(recorder) -> Iterator[ImapConnection]:
    server = MailServer(host="127.0.0.1", port=recorder.port, secure=False, user="alice",
                        tls=TlsOptions(allow_plaintext_auth=True))
    session = connect(server, "secret", connect_timeout=2, command_timeout=2)
    connection = ImapConnection(session, Deadline(BUDGET_SECONDS), command_timeout=2)
    yield connection
    connection.release()
    session.close()


def literal(data: bytes, recorder: ImapRecorder) -> bytes:
    plus = b"+" if "LITERAL+" in recorder.capabilities else b""
    return b"{%d%s}\r\n" % (len(data), plus) + data


@pytest.mark.parametrize(("term", "argument"), [
    ("{5}", b'"{5}"'),
    ('"', b'"\\""'),
    ("\\", b'"\\\\"'),
    ('say "{5}" \\ (x)', b'"say \\"{5}\\" \\\\ (x)"'),
    ("plain", b'"plain"'),
    ("", b'""'),
])
def test_ascii_search_terms_go_out_quoted(recorder, conn, term, argument):
    # Given a search term with IMAP's special characters
    # When it is searched for
    started = time.monotonic()
    assert find_uids(conn, {"subject": term}) == []

    # Then it went out as one quoted string, and the answer came at once
    assert recorder.sent(b"SEARCH") == [b"UID SEARCH SUBJECT " + argument]
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("term", ["two\r\nlines", "cr\ronly", "lf\nonly"])
def test_search_terms_with_cr_or_lf_go_out_as_literals(recorder, conn, term):
    find_uids(conn, {"body": term})
    assert recorder.sent(b"SEARCH") == [b"UID SEARCH BODY " + literal(term.encode(), recorder)]


@pytest.mark.parametrize("term", ["Grüße", "日本"])
def test_8bit_search_terms_go_out_as_utf8_literals_with_the_charset(recorder, conn, term):
    find_uids(conn, {"subject": term, "header": {"X-Tag": term}})
    encoded = literal(term.encode("utf-8"), recorder)
    assert recorder.sent(b"SEARCH") == [
        b'UID SEARCH CHARSET UTF-8 SUBJECT ' + encoded + b' HEADER "X-Tag" ' + encoded]


def test_a_search_term_with_nul_is_refused_before_anything_is_sent(recorder, conn):
    with pytest.raises(ApiError) as refused:
        find_uids(conn, {"from": "a\x00b"})
    assert (refused.value.status, refused.value.code) == (422, "ValidationError")
    assert "search.from" in refused.value.details
    assert recorder.sent(b"SEARCH") == []
    assert not conn.broken


def test_a_message_id_lookup_quotes_the_id(recorder, conn):
    # Given a server without UIDPLUS, so an APPEND is found again by its Message-ID
    raw = b"Message-ID: <{5}\"x\\@example.test>\r\nSubject: hi\r\n\r\nbody\r\n"

    # When the message is appended
    message_changes.append(conn, "INBOX", raw, message_id='<{5}"x\\@example.test>')

    # Then the lookup carried the id as one quoted string
    assert recorder.sent(b"SEARCH") == [b'UID SEARCH HEADER Message-ID "<{5}\\"x\\\\@example.test>"']


def test_mailbox_names_go_out_quoted(recorder, conn):
    mailboxes.create_mailbox(conn, 'Sub "{5}" \\x')
    assert recorder.sent(b"CREATE") == [b'CREATE "Sub \\"{5}\\" \\\\x"']


def test_the_login_user_name_goes_out_quoted(recorder):
    # Given a user name with a space, quotes, a backslash and a literal-looking "{5}"
    server = MailServer(host="127.0.0.1", port=recorder.port, secure=False, user='al "ice\\ {5}',
                        tls=TlsOptions(allow_plaintext_auth=True))

    # When the session logs in
    connect(server, 'p"w', connect_timeout=2, command_timeout=2).close()

    # Then LOGIN carried exactly two quoted strings
    assert recorder.sent(b"LOGIN") == [b'LOGIN "al \\"ice\\\\ {5}" "p\\"w"']


@pytest.mark.parametrize(("field", "auth"), [
    ("imap.auth.user", {"user": "alice\r\nA1 LOGOUT", "pass": "secret"}),
    ("imap.auth.pass", {"user": "alice", "pass": "sec\nret-CANARY"}),
    ("imap.auth.pass", {"user": "alice", "pass": "sec\x00ret-CANARY"}),
])
def test_credentials_that_login_cannot_carry_are_a_422(api, field, auth):
    # Given account settings whose user or password holds CR, LF or NUL
    response = api.post("/v1/account", {"account": "acc-crlf", "email": "alice@example.test", "name": "A",
                                        "imap": {"host": "127.0.0.1", "port": 143, "auth": auth}, "verify": False})

    # Then the request is refused naming the field, and the password is not echoed
    assert (response.status, response.json["code"]) == (422, "ValidationError"), response.body
    assert field in response.json["details"]
    assert b"CANARY" not in response.body
