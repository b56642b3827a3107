"""A UIDVALIDITY change: which messages arrived since the last sync, and how often a reset is accepted."""

from __future__ import annotations

import random
import zlib
from dataclasses import replace

import pytest

from chalicelib.sync.checkpoint import MailboxCheckpoint, MessageState
from chalicelib.sync.known_messages import (
    MAX_REMEMBERED_MESSAGE_IDS,
    UNKNOWN,
    KnownMessages,
    MessageIdentity,
    arrivals,
    message_id_digest,
)
from chalicelib.sync.reconcile import MailboxSnapshot, reconcile_mailbox
from chalicelib.sync.reset_guard import (
    RESET_WINDOW_SECONDS,
    RESETS_ALLOWED,
    UIDVALIDITY_UNSTABLE,
    UidValidityUnstableError,
    reset_allowed,
    with_reset,
)
from chalicelib.sync.uidset import UidSet
from chalicelib.varint import write_varint

A, B, C = (message_id_digest(f"<{name}@example.test>") for name in "abc")
SYNCED = 1_700_000_000
BEFORE, AFTER = SYNCED - 60, SYNCED + 60


def known(*digests: int, complete: bool = True) -> KnownMessages:
    return KnownMessages(complete=complete).extended(digests)


def identity(digest: int | None, internal_date: int | None = BEFORE) -> MessageIdentity:
    return MessageIdentity(digest, internal_date)


# -- which messages arrived ----------------------------------------------------------------

ARRIVALS = [
    ("remembered Message-ID: known", known(A), SYNCED, {1: identity(A, AFTER)}, []),
    ("unknown Message-ID, complete set: arrived whatever its date", known(A), SYNCED, {1: identity(B)}, [1]),
    ("unknown Message-ID, truncated set, old: known", known(A, complete=False), SYNCED, {1: identity(B)}, []),
    ("unknown Message-ID, truncated set, new: arrived", known(A, complete=False), SYNCED,
     {1: identity(B, AFTER)}, [1]),
    ("no Message-ID, old: known", known(A), SYNCED, {1: identity(None)}, []),
    ("no Message-ID, new: arrived", known(A), SYNCED, {1: identity(None, AFTER)}, [1]),
    ("no Message-ID, the very second of the sync: arrived", known(A), SYNCED, {1: identity(None, SYNCED)}, [1]),
    ("no Message-ID, no INTERNALDATE: known", known(A), SYNCED, {1: identity(None, None)}, []),
    ("a second copy of a known message: arrived", known(A), SYNCED, {1: identity(A), 2: identity(A)}, [2]),
    ("two known copies: both known", known(A, A), SYNCED, {1: identity(A), 2: identity(A)}, []),
    ("a checkpoint from before digests: everything known", UNKNOWN, None,
     {1: identity(A, AFTER), 2: identity(None, AFTER)}, []),
    ("mixed, in UID order", known(A, B), SYNCED,
     {5: identity(C), 2: identity(A), 3: identity(None, AFTER), 9: identity(B)}, [3, 5]),
]


@pytest.mark.parametrize(("name", "remembered", "synced_at", "identities", "expected"), ARRIVALS,
                         ids=[row[0] for row in ARRIVALS])
def test_arrivals_table(name, remembered, synced_at, identities, expected):
    assert arrivals(remembered, synced_at, identities) == expected


def test_given_more_digests_than_the_limit_then_the_oldest_are_dropped_and_the_set_is_truncated():
    full = known(*range(MAX_REMEMBERED_MESSAGE_IDS))
    assert full.complete and len(full) == MAX_REMEMBERED_MESSAGE_IDS
    more = full.extended([A])
    assert not more.complete and len(more) == MAX_REMEMBERED_MESSAGE_IDS
    assert 0 not in more.counts() and more.counts()[A] == 1


def test_given_a_baseline_then_the_set_is_complete_only_if_every_message_was_identified():
    identities = {1: identity(A), 2: identity(None), 3: identity(B)}
    assert KnownMessages.of_folder(identities, [1, 2, 3]) == known(A, B)
    assert not KnownMessages.of_folder(identities, [0, 1, 2, 3]).complete  # 0 was not fetched


def test_message_id_digests_ignore_surrounding_blanks_and_differ_by_id():
    assert message_id_digest(" <a@example.test>\r\n") == A != B
    assert 0 <= A < 2 ** 32


# -- the guard -----------------------------------------------------------------------------

NOW = 2_000_000_000
GUARD = [
    ("never reset", (), True),
    ("fewer than allowed in the window", (NOW - 10,) * (RESETS_ALLOWED - 1), True),
    ("as many as allowed in the window", (NOW - 10,) * RESETS_ALLOWED, False),
    ("as many as allowed, the oldest just out of the window",
     (NOW - RESET_WINDOW_SECONDS, *(NOW - 10,) * (RESETS_ALLOWED - 1)), True),
    ("as many as allowed, the oldest just inside", (NOW - RESET_WINDOW_SECONDS + 1,) * RESETS_ALLOWED, False),
]


@pytest.mark.parametrize(("name", "resets", "allowed"), GUARD, ids=[row[0] for row in GUARD])
def test_reset_guard_table(name, resets, allowed):
    assert reset_allowed(resets, NOW) is allowed


def test_accepted_resets_are_kept_for_the_window_only_and_at_most_as_many_as_allowed():
    assert with_reset((NOW - RESET_WINDOW_SECONDS, NOW - 5), NOW) == (NOW - 5, NOW)
    assert with_reset(tuple(range(NOW - 10, NOW)), NOW) == (NOW - 2, NOW - 1, NOW)[-RESETS_ALLOWED:]


# -- reconcile -----------------------------------------------------------------------------

def stored(uids: list[int], digests: list[int], *, synced_at: int | None = SYNCED,
           resets: tuple[int, ...] = ()) -> MailboxCheckpoint:
    return MailboxCheckpoint(path="INBOX", uidvalidity=7, uidnext=max(uids) + 1, uids=UidSet(uids), revision=3,
                             known=known(*digests), synced_at=synced_at, resets=resets)


def reset_snapshot(identities: dict[int, MessageIdentity], listed: list[int], taken_at: int = NOW) -> MailboxSnapshot:
    return MailboxSnapshot("INBOX", 99, max(identities) + 1, None, {uid: MessageState() for uid in identities},
                           present=UidSet(identities), listings={uid: {"subject": f"s{uid}"} for uid in listed},
                           identities=identities, taken_at=taken_at)


def test_given_a_reset_when_reconciled_then_reset_first_then_one_message_new_per_arrival():
    # Given: two known messages; after the reset the server has them (new UIDs) and two more
    before = stored([1, 2], [A, B])
    snapshot = reset_snapshot({1: identity(B), 2: identity(A), 3: identity(C), 4: identity(None, NOW)}, [3, 4])
    # When
    result = reconcile_mailbox("acct", before, snapshot)
    # Then
    assert [(e.event, e.data.get("uid")) for e in result.events] == [
        ("mailboxReset", None), ("messageNew", 3), ("messageNew", 4)]
    assert result.events[1].data["subject"] == "s3"
    assert result.checkpoint.uidvalidity == 99 and result.checkpoint.uids == UidSet([1, 2, 3, 4])
    assert result.checkpoint.known == known(B, A, C) and result.checkpoint.synced_at == NOW
    assert result.checkpoint.resets == (NOW,)
    again = reconcile_mailbox("acct", before, snapshot)
    assert [e.id for e in again.events] == [e.id for e in result.events]  # a re-run repeats the same ids


def test_given_a_checkpoint_from_before_digests_when_reset_then_silent_as_before():
    before = replace(stored([1], []), known=UNKNOWN, synced_at=None)
    result = reconcile_mailbox("acct", before, reset_snapshot({1: identity(A), 2: identity(B, NOW)}, []))
    assert [e.event for e in result.events] == ["mailboxReset"]


def test_given_too_many_recent_resets_when_reset_again_then_refused_with_a_stable_code():
    before = stored([1], [A], resets=(NOW - 30,) * RESETS_ALLOWED)
    with pytest.raises(UidValidityUnstableError) as refused:
        reconcile_mailbox("acct", before, reset_snapshot({1: identity(A)}, []))
    assert refused.value.code == UIDVALIDITY_UNSTABLE and refused.value.path == "INBOX"


def test_given_new_mail_when_reconciled_then_its_digest_is_remembered_and_the_sync_time_moves():
    before = stored([1], [A])
    snapshot = MailboxSnapshot("INBOX", 7, 3, None, {1: MessageState(), 2: MessageState()}, present=UidSet([1, 2]),
                               listings={2: {}}, identities={2: identity(B, NOW)}, taken_at=NOW)
    result = reconcile_mailbox("acct", before, snapshot)
    assert result.checkpoint.known == known(A, B) and result.checkpoint.synced_at == NOW
    partial = reconcile_mailbox("acct", before, replace(snapshot, partial=True))
    assert partial.checkpoint.synced_at == SYNCED  # mail past a partial pass is not known yet


def test_given_nothing_new_when_reconciled_later_then_nothing_is_written():
    before = stored([1], [A])
    snapshot = MailboxSnapshot("INBOX", 7, 2, None, {1: MessageState()}, present=UidSet([1]), taken_at=NOW)
    result = reconcile_mailbox("acct", before, snapshot)
    assert not result.changed and result.checkpoint is before


# -- the checkpoint blob ---------------------------------------------------------------------

def test_given_known_messages_sync_time_and_resets_when_encoded_then_decoded_identically():
    checkpoint = stored([1, 2, 5], [A, B], resets=(NOW - 5, NOW))
    sets = MailboxCheckpoint.decode_sets(checkpoint.encode_sets())
    assert (sets.known, sets.synced_at, sets.resets) == (checkpoint.known, SYNCED, (NOW - 5, NOW))


def test_given_a_blob_written_before_digests_when_decoded_then_nothing_is_known():
    old = bytearray([1])
    old += UidSet([1, 2]).encode()
    write_varint(old, 0)
    write_varint(old, 0)
    sets = MailboxCheckpoint.decode_sets(zlib.compress(bytes(old)))
    assert sets.uids == UidSet([1, 2])
    assert (sets.known, sets.synced_at, sets.resets) == (UNKNOWN, None, ())


def test_given_a_full_set_of_digests_then_the_checkpoint_grows_by_at_most_20_kb():
    rng = random.Random(4)
    uids = list(range(1, 100_001))
    bare = MailboxCheckpoint(path="INBOX", uidvalidity=1, uidnext=100_001, uids=UidSet(uids))
    full = replace(bare, known=known(*(rng.getrandbits(32) for _ in uids)), synced_at=SYNCED)
    growth = len(full.encode_sets()) - len(bare.encode_sets())
    assert growth <= MAX_REMEMBERED_MESSAGE_IDS * 4 + 100
