"""HIGHESTMODSEQ that goes down (Dovecot after an index rebuild): a full flag resync, then the lower value."""

from __future__ import annotations

import pytest

from chalicelib.sync.checkpoint import MailboxCheckpoint, MessageState
from chalicelib.sync.reconcile import MailboxSnapshot, reconcile_mailbox
from chalicelib.sync.snapshot_strategy import snapshot_strategy
from chalicelib.sync.uidset import UidSet

SEEN = "\\Seen"


def at(modseq: int | None, uidvalidity: int = 7) -> MailboxCheckpoint:
    return MailboxCheckpoint(path="INBOX", uidvalidity=uidvalidity, uidnext=4, highestmodseq=modseq,
                             uids=UidSet([1, 2, 3]), flags={SEEN: UidSet([1])}, revision=3)


@pytest.mark.parametrize(("checkpoint", "uidvalidity", "reported", "qresync", "condstore", "expected"), [
    (None, 7, 50, True, True, "baseline"),
    (at(50), 8, 10, True, True, "baseline"),  # a new UIDVALIDITY is a reset, whatever the modseq
    (at(50), 7, 10, True, True, "flag_resync"),  # went down: QRESYNC from 50 would miss changes
    (at(50), 7, 10, False, True, "flag_resync"),  # ... and so would CHANGEDSINCE 50
    (at(50), 7, 49, False, True, "flag_resync"),
    (at(50), 7, 50, True, True, "qresync"),
    (at(50), 7, 60, True, True, "qresync"),
    (at(50), 7, 60, False, True, "changedsince"),
    (at(50), 7, None, False, True, "changedsince"),  # nothing reported: nothing to compare
    (at(None), 7, 10, False, True, "window"),  # never synced to a modseq
    (at(50), 7, 10, False, False, "flag_resync"),  # CONDSTORE withdrawn but a lower value reported
    (at(50), 7, None, False, False, "window"),
])
def test_strategy(checkpoint, uidvalidity, reported, qresync, condstore, expected):
    assert snapshot_strategy(checkpoint, uidvalidity, reported, qresync=qresync, condstore=condstore) == expected


def resync_snapshot(modseq: int, *, flags_resynced: bool) -> MailboxSnapshot:
    # Given every flag again (UID 2 was marked \Seen while the modseq went from 50 to 12)
    return MailboxSnapshot("INBOX", 7, 4, modseq,
                           {1: MessageState(frozenset({SEEN})), 2: MessageState(frozenset({SEEN})),
                            3: MessageState()},
                           present=UidSet([1, 2, 3]), flags_resynced=flags_resynced)


def test_flag_resync_reports_the_change_and_stores_the_lower_modseq():
    result = reconcile_mailbox("acct", at(50), resync_snapshot(12, flags_resynced=True))
    assert [(e.event, e.data["uid"], e.data["changes"]["flags"]["added"]) for e in result.events] == [
        ("messageUpdated", 2, [SEEN])]
    assert result.checkpoint.highestmodseq == 12
    assert result.checkpoint.flags[SEEN] == UidSet([1, 2])


def test_flag_resync_without_changes_still_stores_the_lower_modseq():
    # Else the next look reports 12 < 50 again and resyncs every time.
    snapshot = MailboxSnapshot("INBOX", 7, 4, 12, {1: MessageState(frozenset({SEEN})), 2: MessageState(),
                                                   3: MessageState()},
                               present=UidSet([1, 2, 3]), flags_resynced=True)
    result = reconcile_mailbox("acct", at(50), snapshot)
    assert result.events == []
    assert result.checkpoint.highestmodseq == 12
    assert not result.checkpoint.modseq_went_back(12)


def test_a_lower_modseq_without_a_resync_never_lowers_the_checkpoint():
    # A partial pass or a FETCH-derived value may be older than what was synced to.
    result = reconcile_mailbox("acct", at(50), resync_snapshot(12, flags_resynced=False))
    assert result.checkpoint.highestmodseq == 50
