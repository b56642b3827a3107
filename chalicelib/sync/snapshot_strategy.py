"""How a mailbox snapshot must be taken, given the checkpoint and what EXAMINE reported. Pure.

The IMAP adapter (:mod:`chalicelib.imap.watch_snapshot`) asks this once per snapshot::

    checkpoint / EXAMINE                               strategy
    -------------------------------------------------  ------------
    no checkpoint, or a different UIDVALIDITY          baseline      (every UID, every flag)
    HIGHESTMODSEQ lower than the checkpoint's          flag_resync   (every UID, every flag, compared)
    QRESYNC and a checkpoint HIGHESTMODSEQ             qresync       (EXAMINE's own answer)
    CONDSTORE and a checkpoint HIGHESTMODSEQ           changedsince  (UID FETCH ... CHANGEDSINCE)
    anything else (Office 365: no CONDSTORE)           window        (flags of the newest UIDs)

Why ``flag_resync``: Dovecot may report a lower HIGHESTMODSEQ with the same UIDVALIDITY
after an index rebuild. Asking ``CHANGEDSINCE`` our (higher) value would then miss every
flag change numbered below it, for good; a full comparison is the only safe answer, like a
CONDSTORE reset without a new UIDVALIDITY.
"""

from __future__ import annotations

from typing import Literal

from chalicelib.sync.checkpoint import MailboxCheckpoint

Strategy = Literal["baseline", "flag_resync", "qresync", "changedsince", "window"]


def snapshot_strategy(checkpoint: MailboxCheckpoint | None, uidvalidity: int, highestmodseq: int | None, *,
                      qresync: bool, condstore: bool) -> Strategy:
    """The row of the module's table that applies."""
    if checkpoint is None or checkpoint.uidvalidity != uidvalidity:
        return "baseline"
    if checkpoint.modseq_went_back(highestmodseq):
        return "flag_resync"
    if qresync and checkpoint.highestmodseq:
        return "qresync"
    if condstore and checkpoint.highestmodseq:
        return "changedsince"
    return "window"
