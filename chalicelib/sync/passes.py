"""Bounded sync passes: how much of a mailbox's backlog of new mail one snapshot covers. Pure.

A watcher that comes back after a long outage (or sees a bulk import) may find tens of
thousands of new UIDs in a folder. Listing them all before publishing anything would
hold every ``messageNew`` (2 KB each, up to ~224 KB with text) in memory at once: an
OOM kill, a restart, the same catch-up again, and no event ever delivered. So one pass
lists at most ``limit`` new UIDs, the lowest ones; the caller publishes and commits that
pass, then takes the next snapshot, until a pass is complete::

    checkpoint (uidnext=U, modseq=M)        server: new UIDs u1 < u2 < ... < uK >= U
          │
          ▼  plan_pass(limit=N)
    K <= N: list all, uidnext=server's, modseq=server's          (complete pass)
    K  > N: list u1..uN, defer uN+1..uK,
            uidnext=uN+1, modseq=M                               (partial pass)
          │
          ▼  narrow(snapshot): deferred UIDs removed from ``changed``/``present``
    reconcile -> publish -> commit -> next snapshot from the new checkpoint

Why the partial snapshot looks the way it does:
- deferred UIDs must be *absent* from ``changed``/``present``: reconcile treats a new UID
  it sees without a listing as a phantom (vanished before it could be fetched) and moves
  UIDNEXT past it, so it would never be announced;
- ``uidnext`` stops at the first deferred UID, so the next pass still sees them as new;
- ``highestmodseq`` stays the checkpoint's, so the next ``CHANGEDSINCE``/``QRESYNC`` pass
  re-reads from the same point: what a previous pass already applied reconciles to no
  change (no event), and what it deferred comes back.

Equivalence (held by tests/unit/test_sync_passes.py): for a server that does not change
meanwhile, the passes emit exactly the events of one complete pass (same ids, same
order: deletions and updates in the first pass, then ``messageNew`` in UID order) and end
on the same checkpoint contents.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import islice

from chalicelib.sync.reconcile import MailboxSnapshot
from chalicelib.sync.uidset import EMPTY, UidSet


@dataclass(frozen=True)
class PassPlan:
    """Which new UIDs one pass lists, and what the snapshot of a partial pass carries."""

    listed: UidSet
    deferred: UidSet = EMPTY
    uidnext: int | None = None  # None: the server's UIDNEXT (complete pass)
    highestmodseq: int | None = None  # the checkpoint's, for a partial pass

    @property
    def partial(self) -> bool:
        return bool(self.deferred)

    def narrow(self, snapshot: MailboxSnapshot) -> MailboxSnapshot:
        """``snapshot`` as this pass may show it: without the deferred UIDs, capped."""
        if not self.partial:
            return snapshot
        assert self.uidnext is not None  # a partial pass stops at its first deferred UID
        deferred = self.deferred
        return replace(
            snapshot,
            uidnext=self.uidnext,
            highestmodseq=self.highestmodseq,
            changed={uid: state for uid, state in snapshot.changed.items() if uid not in deferred},
            present=None if snapshot.present is None else snapshot.present - deferred,
            listings={uid: item for uid, item in snapshot.listings.items() if uid not in deferred},
            partial=True)


def plan_pass(new_uids: UidSet, limit: int | None, checkpoint_highestmodseq: int | None) -> PassPlan:
    """Split ``new_uids`` (>= the checkpoint's UIDNEXT) into this pass's and later ones'.

    ``limit``: most UIDs listed (None: no bound). ``checkpoint_highestmodseq``: what a
    partial snapshot reports (None for a mailbox seen for the first time, or a server
    without CONDSTORE).
    """
    if limit is None:
        return PassPlan(listed=new_uids)
    if limit < 1:
        raise ValueError("a pass must list at least one message")
    ascending = iter(new_uids)
    listed = UidSet(islice(ascending, limit))
    first_deferred = next(ascending, None)
    if first_deferred is None:
        return PassPlan(listed=listed)
    return PassPlan(listed=listed, deferred=new_uids.at_least(first_deferred), uidnext=first_deferred,
                    highestmodseq=checkpoint_highestmodseq)
