"""The folder model and flag normalization, fed with raw server lines (Gmail's XLIST,
servers that shout their flags, a server without SPECIAL-USE).

The mail API reads LIST answers as imaplib files them (one flat list for all responses);
the watcher reads them one response at a time. Both must end in the same folders, roles
and flags.
"""

from __future__ import annotations

import pytest

from chalicelib.imap import watch_responses as r
from chalicelib.imap import wire
from chalicelib.imap.flags import canonical, message_flags
from chalicelib.imap.folders import MailboxStatus, parse_lists, parse_statuses, with_special_uses
from chalicelib.imap.special_use import SpecialUse
from tests.support.raw_responses import untagged


def imaplib_filed(raw: bytes, kind: bytes) -> list[wire.Part]:
    """The mail API's view: what imaplib files under ``untagged_responses[kind]`` (payloads
    without ``* KIND ``, a literal as a (line, octets) pair followed by the rest of its line)."""
    flat: list[wire.Part] = []
    for response in untagged(raw):
        assert response.kind == kind.decode()
        first, *rest = response.parts
        flat.append(first)
        flat.extend(rest)
    return flat


GMAIL_LIST = (
    b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
    b'* LIST (\\HasChildren \\Noselect) "/" "[Gmail]"\r\n'
    b'* LIST (\\HasNoChildren) "/" "[Gmail]/All Mail"\r\n'
    b'* LIST (\\HasNoChildren) "/" "[Gmail]/Sent Mail"\r\n'
    b'* LIST (\\HasNoChildren) "/" "[Gmail]/Spam"\r\n'
    b'* LIST (\\HasNoChildren) "/" "[Gmail]/Starred"\r\n'
    b'* LIST (\\HasNoChildren) "/" "Receipts"\r\n')
GMAIL_XLIST = (
    b'* XLIST (\\HasNoChildren \\Inbox) "/" "Inbox"\r\n'
    b'* XLIST (\\HasChildren \\Noselect) "/" "[Gmail]"\r\n'
    b'* XLIST (\\HasNoChildren \\AllMail) "/" "[Gmail]/All Mail"\r\n'
    b'* XLIST (\\HasNoChildren \\Sent) "/" "[Gmail]/Sent Mail"\r\n'
    b'* XLIST (\\HasNoChildren \\Spam) "/" "[Gmail]/Spam"\r\n'
    b'* XLIST (\\HasNoChildren \\Starred) "/" "[Gmail]/Starred"\r\n'
    b'* XLIST (\\HasNoChildren) "/" "Receipts"\r\n')


def test_xlist_roles_are_read_from_raw_xlist_lines():
    # Given: Gmail's LIST (no roles) and XLIST (its own role names), as imaplib files them
    listed = parse_lists(wire.group_responses(imaplib_filed(GMAIL_LIST, b"LIST")))
    xlisted = parse_lists(wire.group_responses(imaplib_filed(GMAIL_XLIST, b"XLIST")))
    # When: the one resolver assigns roles
    _, roles = with_special_uses(listed, xlisted)
    # Then: XLIST's names map onto RFC 6154 roles, and the source says where they came from
    assert roles == {
        "INBOX": SpecialUse("\\Inbox", "name"),
        "[Gmail]/All Mail": SpecialUse("\\All", "xlist"),
        "[Gmail]/Sent Mail": SpecialUse("\\Sent", "xlist"),
        "[Gmail]/Spam": SpecialUse("\\Junk", "xlist"),
        "[Gmail]/Starred": SpecialUse("\\Flagged", "xlist"),
    }


def test_the_watcher_gives_xlist_roles_too():
    listed = r.listed_mailboxes(untagged(GMAIL_LIST), untagged(GMAIL_XLIST))
    assert listed["[Gmail]/All Mail"].special_use == "\\All" and listed["[Gmail]/Spam"].special_use == "\\Junk"
    assert "[Gmail]" not in listed  # \Noselect


def test_shouted_attributes_are_canonical_and_unselectable_parents_recognized():
    # Given: a server that spells attributes in upper case
    lines = (b'* LIST (\\HASNOCHILDREN \\SENT) "." "Sent"\r\n'
             b'* LIST (\\NOSELECT \\HASCHILDREN) "." "Archive"\r\n'
             b'* LIST (\\hasnochildren \\Drafts) "." {6}\r\nDrafts\r\n')
    entries = parse_lists(wire.group_responses(imaplib_filed(lines, b"LIST")))
    # Then: one spelling from here on, and \NOSELECT is still unselectable
    assert [e.mailbox.flags for e in entries] == [("\\HasNoChildren", "\\Sent"), ("\\Noselect", "\\HasChildren"),
                                                  ("\\HasNoChildren", "\\Drafts")]
    assert [e.selectable for e in entries] == [True, False, True]
    # And: the watcher's role is the canonical \Sent, not the server's \SENT
    assert r.listed_mailboxes(untagged(lines))["Sent"].special_use == "\\Sent"


def test_a_server_without_special_use_gets_roles_from_names_in_the_watcher_as_in_the_api():
    # Given: LIST without any role attribute (no SPECIAL-USE), localized and English names
    lines = (b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
             b'* LIST (\\HasNoChildren) "/" "Sent"\r\n'
             b'* LIST (\\HasNoChildren) "/" "Papierkorb"\r\n'
             b'* LIST (\\HasNoChildren) "/" "Work/Sent"\r\n')
    _, api_roles = with_special_uses(parse_lists(wire.group_responses(imaplib_filed(lines, b"LIST"))))
    watched = r.listed_mailboxes(untagged(lines))
    # Then: both name the same roles, by name
    assert {path: use.role for path, use in api_roles.items()} == {
        "INBOX": "\\Inbox", "Sent": "\\Sent", "Papierkorb": "\\Trash"}
    assert {path: m.special_use for path, m in watched.items() if m.special_use} == {
        "INBOX": "\\Inbox", "Sent": "\\Sent", "Papierkorb": "\\Trash"}
    assert api_roles["Sent"].source == "name"


def test_list_status_lines_filed_by_imaplib_parse_like_the_watchers():
    lines = (b'* STATUS "Work" (MESSAGES 3 UIDNEXT 9 UIDVALIDITY 4 UNSEEN 1)\r\n'
             b'* STATUS Entw&APw-rfe (messages 0 uidnext 1 uidvalidity 5)\r\n')
    statuses = parse_statuses(wire.group_responses(imaplib_filed(lines, b"STATUS")))
    assert statuses == {"Work": MailboxStatus(uidvalidity=4, uidnext=9, messages=3, unseen=1),
                        "Entwürfe": MailboxStatus(uidvalidity=5, uidnext=1, messages=0)}
    assert dict(r.status_response(u) for u in untagged(lines)) == statuses


@pytest.mark.parametrize(("raw", "expected"), [
    ([b"\\SEEN", b"\\recent", b"$Work"], ("\\Seen", "$Work")),
    ([b"\\Answered", b"\\FLAGGED", b"\\Deleted", b"\\draft"], ("\\Answered", "\\Flagged", "\\Deleted", "\\Draft")),
    ([b"\\Recent"], ()),
    ([b"$MDNSent", b"NonJunk"], ("$MDNSent", "NonJunk")),
    (None, ()),
])
def test_message_flags_are_canonical_without_recent(raw, expected):
    assert message_flags(raw) == expected


def test_fetched_flags_reach_the_watcher_canonical_and_without_recent():
    # Given: a FETCH whose system flags are not in canonical case
    lines = untagged(b"* 3 FETCH (UID 12 FLAGS (\\SEEN \\RECENT $Label1) MODSEQ (40))\r\n")
    # Then: checkpoints and events see one spelling, and never \Recent
    assert r.fetched_states(lines)[12].state.flags == frozenset({"\\Seen", "$Label1"})


def test_keywords_keep_their_spelling():
    assert canonical(b"$Forwarded") == "$Forwarded" and canonical("\\XCustom") == "\\XCustom"
