"""Bounded passes: a backlog synced in passes of N new messages equals one complete pass.

The model server of test_sync_properties takes a random history, the watcher baselines,
then a random backlog (bulk appends interleaved with flag changes and expunges) lands
while it is away. The backlog is then synced twice from the same checkpoint: once in one
unbounded pass, once in passes of a random N (each snapshot built the way the IMAP
adapter builds it: full without CONDSTORE, CHANGEDSINCE + UID SEARCH, or QRESYNC).
Both must give the same events (ids and order) and the same final checkpoint.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.sync.checkpoint import MailboxCheckpoint, MessageState
from chalicelib.sync.passes import plan_pass
from chalicelib.sync.reconcile import MailboxSnapshot, reconcile_mailbox
from chalicelib.sync.uidset import UidSet
from tests.unit.test_sync_properties import ModelMailbox, flag_sets

SHAPES = ("full", "condstore", "qresync")


def adapter_snapshot(box: ModelMailbox, checkpoint: MailboxCheckpoint, shape: str, limit: int | None,
                     flags_window: int) -> MailboxSnapshot:
    """What WatchConnection.snapshot builds for ``shape`` (same order of decisions, no socket)."""
    since = checkpoint.highestmodseq or 0
    present: UidSet | None = UidSet(box.messages)
    vanished = UidSet()
    if shape == "qresync":
        present = None
        reported = {uid: f for uid, (f, m) in box.messages.items() if m > since}
        vanished = UidSet(uid for uid, m in box.expunged.items() if m > since)
        plan = plan_pass(UidSet(reported).at_least(checkpoint.uidnext) - vanished, limit, checkpoint.highestmodseq)
    elif shape == "condstore":
        plan = plan_pass(present.at_least(checkpoint.uidnext), limit, checkpoint.highestmodseq)
        below = plan.uidnext or box.uidnext
        reported = {uid: f for uid, (f, m) in box.messages.items() if m > since and uid < below}
    else:
        plan = plan_pass(present.at_least(checkpoint.uidnext), limit, checkpoint.highestmodseq)
        window = (UidSet(sorted(present)[-flags_window:]) | plan.listed) - plan.deferred
        reported = {uid: box.messages[uid][0] for uid in window}
    changed = {uid: MessageState(f) for uid, f in reported.items() if uid not in plan.deferred}
    listings = {uid: {"subject": f"m{uid}"} for uid in plan.listed & UidSet(changed)}
    modseq = None if shape == "full" else box.modseq
    return plan.narrow(MailboxSnapshot(box.path, box.uidvalidity, box.uidnext, modseq, changed, present=present,
                                       vanished=vanished, listings=listings))


def sync_in_passes(box, checkpoint, shape, limit, flags_window):
    events, passes = [], 0
    while True:
        passes += 1
        snapshot = adapter_snapshot(box, checkpoint, shape, limit, flags_window)
        result = reconcile_mailbox("acct", checkpoint, snapshot)
        events += result.events
        checkpoint = result.checkpoint
        if not snapshot.partial:
            return events, checkpoint, passes
        assert passes < 1000, "a partial pass made no progress"


backlog_operations = st.lists(st.one_of(
    st.tuples(st.just("bulk"), st.integers(1, 12), flag_sets),
    st.tuples(st.just("flags"), st.integers(0, 80), flag_sets),
    st.tuples(st.just("expunge"), st.integers(0, 80)),
), max_size=10)


def apply_backlog(box: ModelMailbox, operation: tuple) -> None:
    kind, *args = operation
    if kind == "bulk":
        count, flags = args
        for _ in range(count):
            box.append(flags)
    elif kind == "flags":
        box.set_flags(*args)
    else:
        box.expunge(*args)


@settings(max_examples=300, deadline=None)
@given(history=st.lists(flag_sets, max_size=8), backlog=backlog_operations, limit=st.integers(1, 6),
       shape=st.sampled_from(SHAPES), flags_window=st.integers(1, 20))
def test_a_backlog_synced_in_bounded_passes_equals_one_complete_pass(history, backlog, limit, shape, flags_window):
    # Given: a baselined mailbox, then a backlog of appends, flag changes and expunges
    box = ModelMailbox("INBOX")
    for flags in history:
        box.append(flags)
    baseline = reconcile_mailbox("acct", None, box.full_snapshot()).checkpoint
    if shape == "full":
        baseline = dataclasses.replace(baseline, highestmodseq=None)
    for operation in backlog:
        apply_backlog(box, operation)

    # When: it is synced in one pass, and in passes of at most `limit` new messages
    whole, whole_checkpoint, _ = sync_in_passes(box, baseline, shape, None, flags_window)
    bounded, bounded_checkpoint, passes = sync_in_passes(box, baseline, shape, limit, flags_window)

    # Then: the same events in the same order, the same final state, and no pass lists more than `limit`
    assert [e.id for e in bounded] == [e.id for e in whole]
    assert [(e.event, e.path, e.data) for e in bounded] == [(e.event, e.path, e.data) for e in whole]
    assert dataclasses.replace(bounded_checkpoint, revision=0) == dataclasses.replace(whole_checkpoint, revision=0)
    new_count = sum(1 for e in whole if e.event == "messageNew")
    assert passes == max(1, -(-new_count // limit))


def test_a_partial_pass_leaves_deferred_uids_out_and_keeps_the_old_modseq():
    # Given: a checkpoint at UIDNEXT 10 / MODSEQ 50 and eight new UIDs on the server
    new_uids = UidSet.span(10, 13) | UidSet.span(20, 23)
    # When: a pass may list three of them
    plan = plan_pass(new_uids, 3, 50)
    snapshot = plan.narrow(MailboxSnapshot("INBOX", 7, 24, 90, {uid: MessageState() for uid in new_uids},
                                           present=UidSet.span(1, 5) | new_uids,
                                           listings={uid: {} for uid in plan.listed}))
    # Then: the lowest three are listed; the rest are absent; UIDNEXT stops at the first deferred one
    assert list(plan.listed) == [10, 11, 12]
    assert snapshot.partial and snapshot.uidnext == 13 and snapshot.highestmodseq == 50
    assert set(snapshot.changed) == {10, 11, 12}
    assert snapshot.present == UidSet.span(1, 5) | UidSet.span(10, 12)


def test_a_listed_uid_that_vanished_before_its_listing_is_skipped_but_deferred_ones_are_not():
    # Given: a checkpoint at UIDNEXT 4; UIDs 4..9 are new; 5 was expunged before its listing FETCH
    checkpoint = MailboxCheckpoint("INBOX", 7, 4, 10, uids=UidSet.span(1, 3))
    plan = plan_pass(UidSet.span(4, 9), 3, 10)
    snapshot = plan.narrow(MailboxSnapshot("INBOX", 7, 10, 30, {4: MessageState(), 6: MessageState()},
                                           present=UidSet.span(1, 4) | UidSet.span(6, 9),
                                           listings={4: {}, 6: {}}))
    # When: the pass is reconciled
    result = reconcile_mailbox("acct", checkpoint, snapshot)
    # Then: 4 and 6 are new, 5 is a phantom, and 7.. are still ahead of UIDNEXT
    assert [(e.event, e.data["uid"]) for e in result.events] == [("messageNew", 4), ("messageNew", 6)]
    assert result.checkpoint.uidnext == 7 and result.checkpoint.highestmodseq == 10


def test_a_pass_must_list_at_least_one_message():
    with pytest.raises(ValueError, match="at least one"):
        plan_pass(UidSet([1]), 0, None)
