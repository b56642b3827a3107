"""Checkpoint blobs: round trip, and the size of a 100,000-message mailbox (DynamoDB items max 400 KB)."""

from __future__ import annotations

import random

from chalicelib.sync.checkpoint import MailboxCheckpoint
from chalicelib.sync.uidset import UidSet

ITEM_LIMIT_BYTES = 400 * 1024


def checkpoint_of(uids: list[int], flags: dict[str, list[int]]) -> MailboxCheckpoint:
    return MailboxCheckpoint(path="INBOX", uidvalidity=1, uidnext=max(uids) + 1, highestmodseq=9,
                             uids=UidSet(uids), flags={name: UidSet(v) for name, v in flags.items()})


def test_given_sets_and_labels_when_encoded_then_decoded_identically():
    checkpoint = MailboxCheckpoint(path="INBOX", uidvalidity=1, uidnext=10, uids=UidSet([1, 2, 5]),
                                   flags={"\\Seen": UidSet([1, 5]), "$Label1": UidSet([2])},
                                   labels={"Work/Ünïcode": UidSet([5])})
    uids, flags, labels, *_ = MailboxCheckpoint.decode_sets(checkpoint.encode_sets())
    assert (uids, flags, labels) == (checkpoint.uids, dict(checkpoint.flags), dict(checkpoint.labels))


def test_given_a_realistic_100k_mailbox_when_encoded_then_it_is_a_few_kb():
    # Given: 100,000 UIDs with expunge gaps, mostly read in long runs, some flagged/answered.
    rng = random.Random(4)
    uids = [uid for uid in range(1, 120_001) if rng.random() > 0.17][:100_000]
    unread_tail = set(uids[-300:])
    seen = [uid for uid in uids if uid not in unread_tail and rng.random() > 0.01]
    flagged = [uid for uid in uids if rng.random() < 0.02]
    answered = [uid for uid in uids if rng.random() < 0.05]
    # When
    blob = checkpoint_of(uids, {"\\Seen": seen, "\\Flagged": flagged, "\\Answered": answered}).encode_sets()
    # Then
    assert len(blob) < 60 * 1024, len(blob)


def test_given_a_worst_case_100k_mailbox_with_random_flags_when_encoded_then_it_fits_an_item():
    # Given: every flag set on a coin toss per message: no runs at all, the worst case for ranges.
    rng = random.Random(5)
    uids = list(range(1, 100_001))
    flags = {name: [uid for uid in uids if rng.random() < 0.5]
             for name in ("\\Seen", "\\Flagged", "\\Answered", "\\Draft", "$Forwarded")}
    # When
    blob = checkpoint_of(uids, flags).encode_sets()
    # Then: well under the 400 KB item limit, leaving room for the other attributes.
    assert len(blob) < ITEM_LIMIT_BYTES * 0.6, len(blob)


def test_status_report_matches_only_when_every_reported_value_is_ours():
    checkpoint = MailboxCheckpoint(path="Work", uidvalidity=7, uidnext=12, highestmodseq=40, uids=UidSet([3, 11]))
    assert checkpoint.matches_status(7, 12, 40, 2)          # Dovecot re-announcing an unchanged folder
    assert checkpoint.matches_status(None, None, 40, None)  # NOTIFY sends only what changed
    assert not checkpoint.matches_status(7, 13, 40, 2)      # new mail
    assert not checkpoint.matches_status(None, None, 41, None)  # a flag changed
    assert not checkpoint.matches_status(8, 12, 40, 2)      # re-created
    assert not checkpoint.matches_status(None, None, None, None)  # says nothing: look
