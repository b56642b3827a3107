"""The watcher's IMAP response handling, fed with raw server lines (Dovecot, Gmail, RFC examples)."""

from __future__ import annotations

import pytest

from chalicelib.imap import watch_responses as r
from chalicelib.sync.checkpoint import MessageState
from chalicelib.sync.uidset import UidSet
from tests.support.raw_responses import untagged


def test_select_with_qresync_gives_status_changes_and_vanished():
    lines = untagged(
        b"* OK [CLOSED] Previous mailbox closed.\r\n"
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)\r\n"
        b"* 12 EXISTS\r\n"
        b"* 0 RECENT\r\n"
        b"* OK [UIDVALIDITY 1700000001] UIDs valid\r\n"
        b"* OK [UIDNEXT 41] Predicted next UID\r\n"
        b"* OK [HIGHESTMODSEQ 90210] Highest\r\n"
        b"* VANISHED (EARLIER) 3:5,9\r\n"
        b"* 2 FETCH (UID 7 FLAGS (\\Seen $Work) MODSEQ (90200))\r\n"
        b"* 12 FETCH (FLAGS (\\Recent) UID 40 MODSEQ (90210))\r\n")
    assert r.select_status(lines) == r.MailboxStatus(uidvalidity=1700000001, uidnext=41, highestmodseq=90210,
                                                     messages=12)
    assert r.vanished_uids(lines) == UidSet([3, 4, 5, 9])
    states = r.fetched_states(lines)
    assert states[7] == r.FetchedState(MessageState(frozenset({"\\Seen", "$Work"})), 90200)
    # \Recent is per session: it never leaves the adapter (chalicelib.imap.flags)
    assert states[40].state.flags == frozenset() and states[40].modseq == 90210


def test_nomodseq_mailbox_has_no_highestmodseq():
    lines = untagged(b"* OK [UIDVALIDITY 5] x\r\n* OK [UIDNEXT 2] x\r\n* OK [NOMODSEQ] Sorry\r\n")
    assert r.select_status(lines).highestmodseq is None


def test_unsolicited_fetch_without_uid_is_only_a_hint():
    lines = untagged(b"* 3 FETCH (FLAGS (\\Seen))\r\n")
    assert r.fetched_states(lines) == {}
    assert r.hints_from(lines) == r.Hints(selected_changed=True)


def test_gmail_labels_are_read_with_flags():
    lines = untagged(b'* 1 FETCH (X-GM-LABELS ("\\\\Inbox" "Work/Clients") UID 9 FLAGS (\\Seen) MODSEQ (3))\r\n')
    assert r.fetched_states(lines)[9].state == MessageState(frozenset({"\\Seen"}),
                                                            frozenset({"\\Inbox", "Work/Clients"}))


def test_fetch_with_a_literal_flag_list_element_is_read_whole():
    raw = b"* 1 FETCH (UID 4 FLAGS (\\Seen) ENVELOPE (NIL {5}\r\nhello NIL NIL NIL NIL NIL NIL NIL NIL))\r\n"
    lines = untagged(raw)
    assert r.fetched_states(lines)[4].state.flags == frozenset({"\\Seen"})


@pytest.mark.parametrize(("line", "expected"), [
    (b"* SEARCH 1 2 3 7", UidSet([1, 2, 3, 7])),
    (b"* SEARCH", UidSet()),
    (b'* ESEARCH (TAG "A7") UID ALL 1:3,7', UidSet([1, 2, 3, 7])),
    (b'* ESEARCH (TAG "A7") UID', UidSet()),
])
def test_search_results(line, expected):
    assert r.searched_uids(untagged(line + b"\r\n")) == expected


def test_list_with_special_use_utf7_names_and_unselectable_parents():
    lines = untagged(
        b'* LIST (\\HasNoChildren \\Sent) "/" Sent\r\n'
        b'* LIST (\\HasChildren \\Noselect) "/" "[Gmail]"\r\n'
        b'* LIST (\\HasNoChildren \\All) "/" "[Gmail]/All Mail"\r\n'
        b'* LIST (\\HasNoChildren) "/" "Entw&APw-rfe"\r\n'
        b'* LIST (\\HasNoChildren) "/" {11}\r\nQuote"d Box\r\n'
        b'* LIST (\\HasNoChildren) NIL "Flat"\r\n')
    listed = r.listed_mailboxes(lines)
    assert sorted(listed) == ["Entwürfe", "Flat", "Quote\"d Box", "Sent", "[Gmail]/All Mail"]
    assert listed["Sent"].special_use == "\\Sent" and listed["[Gmail]/All Mail"].special_use == "\\All"
    assert listed["[Gmail]/All Mail"].name == "All Mail" and listed["Flat"].delimiter is None


def test_notify_lines_become_hints():
    lines = untagged(
        b'* STATUS "Work" (MESSAGES 3 UIDNEXT 9 UIDVALIDITY 4)\r\n'
        b'* STATUS Entw&APw-rfe (HIGHESTMODSEQ 12)\r\n'
        b'* LIST (\\NonExistent) "/" "Old"\r\n'
        b'* LIST () "/" "New" ("OLDNAME" ("Older"))\r\n'
        b"* 4 EXPUNGE\r\n")
    hints = r.hints_from(lines)
    assert (hints.selected_changed, hints.mailboxes, hints.mailbox_list_changed) == (
        True, frozenset({"Work", "Entwürfe"}), True)
    assert dict(hints.statuses)["Entwürfe"] == r.MailboxStatus(highestmodseq=12)
    assert r.status_response(lines[0]) == ("Work", r.MailboxStatus(uidvalidity=4, uidnext=9, messages=3))
    entries = [r.list_entry(line) for line in lines[2:4]]
    assert not entries[0].selectable and entries[1].old_name == "Older"


def test_keepalive_and_bye_during_idle():
    assert not r.hints_from(untagged(b"* OK Still here\r\n"))
    assert r.hints_from(untagged(b"* BYE Server shutting down.\r\n")).bye


def test_mailbox_names_are_quoted_in_modified_utf7():
    assert r.encode_mailbox_name('Entwürfe "2026"') == b'"Entw&APw-rfe \\"2026\\""'


def test_garbage_is_not_an_untagged_response():
    with pytest.raises(ValueError):
        r.parse_untagged([b"+ idling"])


def test_status_without_condstore_carries_the_unseen_count():
    # Office 365 answers STATUS without HIGHESTMODSEQ; UNSEEN is what shows a read/unread change
    [line] = untagged(b'* STATUS "Archive" (MESSAGES 12 UIDNEXT 40 UIDVALIDITY 7 UNSEEN 3)\r\n')
    assert r.status_response(line) == ("Archive", r.MailboxStatus(uidvalidity=7, uidnext=40, messages=12, unseen=3))
