"""The API's search object -> IMAP SEARCH keys."""

from __future__ import annotations

from datetime import date

import pytest
from imapclient.imapclient import _literal

from chalicelib.errors import ApiError
from chalicelib.imap.search import build_search

DOVECOT = frozenset({"IMAP4REV1", "ESEARCH", "UIDPLUS"})
GMAIL = frozenset({"IMAP4REV1", "X-GM-EXT-1"})
FASTMAIL = frozenset({"IMAP4REV1", "OBJECTID"})


@pytest.mark.parametrize(("search", "expected"), [
    ({}, [b"ALL"]),
    ({"subject": "hello"}, [b"SUBJECT", b'"hello"']),
    ({"subject": "{5}"}, [b"SUBJECT", b'"{5}"']),
    ({"text": "a\\b"}, [b"TEXT", b'"a\\\\b"']),
    ({"subject": "two words"}, [b"SUBJECT", b'"two words"']),
    ({"from": 'say "hi"'}, [b"FROM", b'"say \\"hi\\""']),
    ({"seen": True, "flagged": False}, [b"SEEN", b"UNFLAGGED"]),
    ({"unseen": False, "deleted": False}, [b"SEEN", b"UNDELETED"]),
    ({"uid": "5:*", "seq": "1:10"}, [b"UID", b"5:*", b"1:10"]),
    ({"since": date(2024, 3, 5), "sentBefore": "2024-12-24"},
     [b"SINCE", b"05-Mar-2024", b"SENTBEFORE", b"24-Dec-2024"]),
    ({"larger": 1000, "smaller": 5000}, [b"LARGER", b"1000", b"SMALLER", b"5000"]),
    ({"header": {"X-Mailer": "", "List-Id": "dev"}},
     [b"HEADER", b'"X-Mailer"', b'""', b"HEADER", b'"List-Id"', b'"dev"']),
    ({"keyword": "$Label1"}, [b"KEYWORD", b"$Label1"]),
])
def test_ascii_criteria(search, expected):
    tokens, utf8 = build_search(search, DOVECOT)
    assert tokens == expected
    assert utf8 is False


def test_unicode_terms_go_out_as_utf8_literals_and_ask_for_charset():
    tokens, utf8 = build_search({"subject": "Grüße", "body": "日本語"}, DOVECOT)
    assert utf8 is True
    assert tokens[1] == "Grüße".encode() and isinstance(tokens[1], _literal)
    assert tokens[3] == "日本語".encode() and isinstance(tokens[3], _literal)


def test_control_characters_are_sent_as_literals_not_quoted():
    tokens, utf8 = build_search({"subject": "a\r\nb"}, DOVECOT)
    assert isinstance(tokens[1], _literal) and utf8 is False


@pytest.mark.parametrize("search", [{"subject": "a\x00b"}, {"header": {"X-A": "\x00"}}, {"header": {"X\x00": "v"}}])
def test_nul_cannot_be_sent_and_is_a_422_naming_the_field(search):
    with pytest.raises(ApiError) as refused:
        build_search(search, DOVECOT)
    assert (refused.value.status, refused.value.code) == (422, "ValidationError")
    assert any(field.startswith(("search.subject", "search.header.")) for field in refused.value.details)


@pytest.mark.parametrize(("capabilities", "expected"), [
    (FASTMAIL, [b"EMAILID", b"M123abc", b"THREADID", b"T9"]),
    (GMAIL, [b"X-GM-MSGID", b"123", b"X-GM-THRID", b"9"]),
])
def test_email_and_thread_ids_use_what_the_server_has(capabilities, expected):
    ids = {"emailId": "M123abc", "threadId": "T9"} if capabilities is FASTMAIL else {"emailId": "123", "threadId": "9"}
    assert build_search(ids, capabilities)[0] == expected


@pytest.mark.parametrize(("search", "capabilities", "field"), [
    ({"emailId": "x"}, DOVECOT, "search.emailId"),
    ({"gmailRaw": "in:inbox"}, DOVECOT, "search.gmailRaw"),
    ({"emailId": "abc"}, GMAIL, "search.emailId"),
    ({"uid": "1:"}, DOVECOT, "search.uid"),
    ({"seq": "0"}, DOVECOT, "search.seq"),
    ({"keyword": "\\Seen"}, DOVECOT, "search.keyword"),
    ({"unknown": 1}, DOVECOT, "search.unknown"),
])
def test_refused_criteria_name_the_field(search, capabilities, field):
    # The request got past the document's schema: what is left are rules it cannot carry (422)
    with pytest.raises(ApiError) as refused:
        build_search(search, capabilities)
    assert refused.value.status == 422
    assert field in refused.value.details


def test_gmail_raw_search_on_gmail():
    assert build_search({"gmailRaw": "has:attachment"}, GMAIL)[0] == [b"X-GM-RAW", b'"has:attachment"']
