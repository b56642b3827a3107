"""reconcile_mailbox, the mailbox diff and account transitions as tables of cases."""

from __future__ import annotations

import pytest

from chalicelib.sync.account_state import (
    SYNC_ERROR_AFTER_FAILURES,
    LoginOutcome,
    initialized_event,
    last_error,
    sync_error_due,
    transition_event,
)
from chalicelib.sync.checkpoint import MailboxCheckpoint, MessageState
from chalicelib.sync.mailboxes import ListedMailbox, diff_mailboxes, mailbox_deleted_event, mailbox_new_event
from chalicelib.sync.reconcile import MailboxSnapshot, reconcile_mailbox
from chalicelib.sync.uidset import UidSet

SEEN, FLAGGED = "\\Seen", "\\Flagged"


def state(*flags: str, labels: tuple[str, ...] | None = None) -> MessageState:
    return MessageState(frozenset(flags), frozenset(labels) if labels is not None else None)


def checkpoint(uids: dict[int, MessageState], *, uidnext: int, uidvalidity: int = 7, modseq: int | None = 10,
               revision: int = 3) -> MailboxCheckpoint:
    flags: dict[str, list[int]] = {}
    labels: dict[str, list[int]] = {}
    for uid, s in uids.items():
        for f in s.flags:
            flags.setdefault(f, []).append(uid)
        for label in s.labels or ():
            labels.setdefault(label, []).append(uid)
    return MailboxCheckpoint(path="INBOX", uidvalidity=uidvalidity, uidnext=uidnext, highestmodseq=modseq,
                             uids=UidSet(uids), flags={k: UidSet(v) for k, v in flags.items()},
                             labels={k: UidSet(v) for k, v in labels.items()}, revision=revision)


def listing(uid: int) -> dict:
    return {"subject": f"message {uid}", "size": 100}


def kinds(result) -> list[tuple[str, int | None]]:
    return [(e.event, e.data.get("uid")) for e in result.events]


BASE = checkpoint({1: state(SEEN), 2: state(), 3: state(FLAGGED)}, uidnext=4)


@pytest.mark.parametrize(("name", "snapshot", "expected"), [
    ("nothing changed (full)",
     MailboxSnapshot("INBOX", 7, 4, 10, {1: state(SEEN), 2: state(), 3: state(FLAGGED)}, present=UidSet([1, 2, 3])),
     []),
    ("nothing changed (incremental)", MailboxSnapshot("INBOX", 7, 4, 10), []),
    ("new message (incremental)",
     MailboxSnapshot("INBOX", 7, 5, 11, {4: state()}, listings={4: listing(4)}), [("messageNew", 4)]),
    ("expunge reported by VANISHED", MailboxSnapshot("INBOX", 7, 4, 11, vanished=UidSet([2])),
     [("messageDeleted", 2)]),
    ("VANISHED superset (never-known UIDs) is ignored",
     MailboxSnapshot("INBOX", 7, 4, 11, vanished=UidSet.span(1, 2) | UidSet([9, 20])),
     [("messageDeleted", 1), ("messageDeleted", 2)]),
    ("expunge found by UID diff (no QRESYNC)",
     MailboxSnapshot("INBOX", 7, 4, None, {1: state(SEEN), 3: state(FLAGGED)}, present=UidSet([1, 3])),
     [("messageDeleted", 2)]),
    ("flag added and removed",
     MailboxSnapshot("INBOX", 7, 4, 12, {1: state(), 2: state(SEEN, "$Work")}),
     [("messageUpdated", 1), ("messageUpdated", 2)]),
    ("\\Recent alone is not a change", MailboxSnapshot("INBOX", 7, 4, 12, {2: state("\\Recent")}), []),
    ("re-reported identical flags are not a change", MailboxSnapshot("INBOX", 7, 4, 12, {3: state(FLAGGED)}), []),
    ("old UID below UIDNEXT that we never knew is not new (FETCH n:* returns the last message)",
     MailboxSnapshot("INBOX", 7, 4, 12, {3: state(FLAGGED)}, present=UidSet([1, 2, 3])), []),
    ("phantom: appeared and vanished before its listing was fetched",
     MailboxSnapshot("INBOX", 7, 6, 12, {4: state(), 5: state()}, listings={5: listing(5)}), [("messageNew", 5)]),
    ("new, updated and deleted together, in that event order: deleted, updated, new",
     MailboxSnapshot("INBOX", 7, 5, 13, {1: state(SEEN, FLAGGED), 4: state()}, vanished=UidSet([3]),
                     listings={4: listing(4)}),
     [("messageDeleted", 3), ("messageUpdated", 1), ("messageNew", 4)]),
])
def test_reconcile_table(name, snapshot, expected):
    assert kinds(reconcile_mailbox("acct", BASE, snapshot)) == expected, name


def test_given_flag_changes_when_reconciled_then_event_lists_exactly_added_and_deleted():
    result = reconcile_mailbox("acct", BASE, MailboxSnapshot("INBOX", 7, 4, 12, {3: state(SEEN, "$Label1")}))
    assert result.events[0].data["changes"] == {
        "flags": {"added": ["$Label1", SEEN], "deleted": [FLAGGED], "value": ["$Label1", SEEN]}}
    assert result.checkpoint.state_of(3) == state(SEEN, "$Label1")


def test_given_gmail_labels_when_changed_then_labels_changes_reported():
    base = checkpoint({1: state(SEEN, labels=("\\Inbox",))}, uidnext=2)
    result = reconcile_mailbox("acct", base, MailboxSnapshot("INBOX", 7, 2, 12, {1: state(SEEN, labels=("Work",))}))
    expected = {"labels": {"added": ["Work"], "deleted": ["\\Inbox"], "value": ["Work"]}}
    assert result.events[0].data["changes"] == expected


def test_given_no_checkpoint_when_reconciled_then_silent_baseline():
    snapshot = MailboxSnapshot("INBOX", 7, 9, 30, {1: state(SEEN), 8: state()}, present=UidSet([1, 8]))
    result = reconcile_mailbox("acct", None, snapshot)
    assert result.events == []
    assert (result.checkpoint.uids, result.checkpoint.uidnext, result.checkpoint.revision) == (UidSet([1, 8]), 9, 1)


def test_given_a_baseline_without_every_flag_when_reconciled_then_refused():
    with pytest.raises(ValueError, match="flags of every message"):
        reconcile_mailbox("acct", None, MailboxSnapshot("INBOX", 7, 9, 30, {1: state()}, present=UidSet([1, 8])))


def test_given_new_uidvalidity_when_reconciled_then_one_reset_and_silent_rebaseline():
    snapshot = MailboxSnapshot("INBOX", 99, 3, 5, {1: state(), 2: state(SEEN)}, present=UidSet([1, 2]))
    result = reconcile_mailbox("acct", BASE, snapshot)
    assert [(e.event, e.data) for e in result.events] == [
        ("mailboxReset", {"path": "INBOX", "uidValidity": "99", "prevUidValidity": "7"})]
    assert result.checkpoint.uidvalidity == 99 and result.checkpoint.revision == BASE.revision + 1
    assert result.checkpoint.states() == {1: state(), 2: state(SEEN)}


def test_given_the_same_change_twice_when_reconciled_then_same_event_ids():
    snapshot = MailboxSnapshot("INBOX", 7, 5, 13, {1: state(), 4: state()}, vanished=UidSet([2]),
                               listings={4: listing(4)})
    first, second = reconcile_mailbox("acct", BASE, snapshot), reconcile_mailbox("acct", BASE, snapshot)
    assert [e.id for e in first.events] == [e.id for e in second.events]
    assert len({e.id for e in first.events}) == 3


def test_given_a_flag_toggled_back_and_forth_when_reconciled_then_each_change_has_its_own_id():
    on = reconcile_mailbox("acct", BASE, MailboxSnapshot("INBOX", 7, 4, 11, {2: state(SEEN)}))
    off = reconcile_mailbox("acct", on.checkpoint, MailboxSnapshot("INBOX", 7, 4, 12, {2: state()}))
    on_again = reconcile_mailbox("acct", off.checkpoint, MailboxSnapshot("INBOX", 7, 4, 13, {2: state(SEEN)}))
    ids = [r.events[0].id for r in (on, off, on_again)]
    assert len(set(ids)) == 3


def test_given_new_message_when_reconciled_then_event_carries_listing_and_checkpoint_flags():
    snapshot = MailboxSnapshot("INBOX", 7, 5, 13, {4: state(SEEN)}, listings={4: listing(4)})
    event = reconcile_mailbox("acct", BASE, snapshot, special_use="\\Inbox").events[0]
    assert event.data["subject"] == "message 4" and event.data["flags"] == [SEEN] and event.data["uid"] == 4
    assert event.path == "INBOX" and event.specialUse == "\\Inbox"


def test_given_nothing_changed_when_reconciled_then_checkpoint_is_not_rewritten():
    result = reconcile_mailbox("acct", BASE, MailboxSnapshot("INBOX", 7, 4, 10))
    assert not result.changed and result.checkpoint is BASE


# -- mailboxes --------------------------------------------------------------------------------


def test_given_listed_and_known_mailboxes_when_diffed_then_created_and_deleted():
    listed = {p: ListedMailbox(p, "/") for p in ("INBOX", "Work", "Work/2026")}
    changes = diff_mailboxes({"INBOX", "Old"}, listed)
    assert [m.path for m in changes.created] == ["Work", "Work/2026"] and changes.deleted == ["Old"]
    assert changes.created[1].name == "2026"


def test_given_a_recreated_folder_when_events_built_then_ids_differ_by_uidvalidity():
    mailbox = ListedMailbox("Work", "/", "\\Archive")
    first, again = mailbox_new_event("a", mailbox, 1), mailbox_new_event("a", mailbox, 2)
    assert first.id != again.id and first.data == {"path": "Work", "name": "Work", "specialUse": "\\Archive"}
    assert mailbox_deleted_event("a", "Work/x", "/", 1).data == {"path": "Work/x", "name": "x"}


# -- account state ----------------------------------------------------------------------------

SYNC_FAILED = LoginOutcome(ok=False, stage="sync", code="CommandFailed", response="NO [SERVERBUG] internal error",
                           message="EXAMINE failed: A3 NO [SERVERBUG] internal error")


@pytest.mark.parametrize(("previous", "outcome", "expected"), [
    ("new", LoginOutcome(ok=True, user="u"), "authenticationSuccess"),
    ("connected", LoginOutcome(ok=True, user="u"), None),
    ("connected", LoginOutcome(ok=False, code="AuthenticationFailed", response="no"), "authenticationError"),
    ("authenticationError", LoginOutcome(ok=False, code="AuthenticationFailed"), None),
    ("authenticationError", LoginOutcome(ok=False, code="ConnectionRefused"), "connectError"),
    ("connectError", LoginOutcome(ok=False, code="ConnectionTimeout"), None),
    ("connectError", LoginOutcome(ok=True, user="u"), "authenticationSuccess"),
    ("connected", SYNC_FAILED, "syncError"),
    ("new", SYNC_FAILED, "syncError"),
    ("syncError", SYNC_FAILED, None),
    ("syncError", LoginOutcome(ok=True, user="u"), None),  # logged in before too: not proof it syncs
    ("syncError", LoginOutcome(ok=True, user="u", stage="sync"), "authenticationSuccess"),
    ("connected", LoginOutcome(ok=True, user="u", stage="sync"), None),
    ("syncError", LoginOutcome(ok=False, code="AuthenticationFailed"), "authenticationError"),
])
def test_account_transitions(previous, outcome, expected):
    event = transition_event("acct", previous, 4, outcome)
    assert (event.event if event else None) == expected


def test_a_sync_error_carries_the_servers_words_and_its_last_error_says_since_when():
    event = transition_event("a", "connected", 3, SYNC_FAILED)
    assert event.data == {"response": "NO [SERVERBUG] internal error", "serverResponseCode": "CommandFailed"}
    assert last_error(SYNC_FAILED, "2026-01-02T03:04:05+00:00") == {
        "code": "CommandFailed", "message": "EXAMINE failed: A3 NO [SERVERBUG] internal error",
        "serverResponse": "NO [SERVERBUG] internal error", "since": "2026-01-02T03:04:05+00:00"}
    assert last_error(LoginOutcome(ok=True, user="u", stage="sync"), "now") is None
    lost = LoginOutcome(ok=False, stage="sync", code="ConnectionLost", message="connection lost: EOF")
    assert last_error(lost, "t") == {"code": "ConnectionLost", "message": "connection lost: EOF", "since": "t"}
    assert transition_event("a", "connected", 3, lost).data["response"] == "connection lost: EOF"


@pytest.mark.parametrize(("failures", "due"), [(1, False), (SYNC_ERROR_AFTER_FAILURES - 1, False),
                                                (SYNC_ERROR_AFTER_FAILURES, True)])
def test_sync_errors_are_reported_after_repeated_failures_only(failures, due):
    assert sync_error_due(failures) is due


def test_given_same_transition_from_same_version_then_same_id_and_no_secret():
    outcome = LoginOutcome(ok=False, code="AuthenticationFailed", response="[AUTHENTICATIONFAILED] nope")
    first, again = transition_event("a", "new", 1, outcome), transition_event("a", "new", 1, outcome)
    later = transition_event("a", "connected", 2, outcome)
    assert first.id == again.id != later.id
    assert first.data == {"response": "[AUTHENTICATIONFAILED] nope", "serverResponseCode": "AuthenticationFailed"}
    assert initialized_event("a").id == initialized_event("a").id
