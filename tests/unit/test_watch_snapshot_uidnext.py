"""UIDNEXT for a server whose EXAMINE answer has none (Courier-IMAP): never past what was seen."""

from __future__ import annotations

import pytest

from chalicelib.imap.watch_responses import FetchedState, MailboxStatus
from chalicelib.imap.watch_snapshot import _uidnext_from_uids
from chalicelib.sync.checkpoint import MailboxCheckpoint, MessageState
from chalicelib.sync.uidset import UidSet

STATUS = MailboxStatus(uidvalidity=7)
FLAGGED = FetchedState(MessageState(flags=frozenset({"\\Flagged"})), None)


@pytest.mark.parametrize(("checkpoint", "present", "fetched", "expected"), [
    (None, UidSet(), {}, 1),  # a new empty folder
    (None, UidSet([1, 2, 9]), {}, 10),  # one past the highest UID seen
    (MailboxCheckpoint.empty("INBOX", 7), UidSet([3]), {}, 4),
    (MailboxCheckpoint(path="INBOX", uidvalidity=7, uidnext=20), UidSet([3]), {}, 20),  # never below the checkpoint
    (MailboxCheckpoint(path="INBOX", uidvalidity=6, uidnext=20), UidSet([3]), {}, 4),  # ... of the same UIDVALIDITY
    (MailboxCheckpoint(path="INBOX", uidvalidity=7, uidnext=5), None, {12: FLAGGED}, 13),  # only a FETCH seen
])
def test_uidnext_from_uids(checkpoint, present, fetched, expected):
    assert _uidnext_from_uids(checkpoint, STATUS, present, fetched) == expected
