"""New messages the server lists but does not return in a FETCH: retried, never skipped. Pure.

Exchange Online answers ``UID FETCH`` with nothing for a UID that arrived a moment ago,
although ``UID SEARCH`` (or a QRESYNC answer) already lists it. Treating such a UID as a
phantom (expunged before it could be fetched) would move UIDNEXT past it and the message
would never be announced. The rule::

    new UID (>= UIDNEXT)            FETCH answer        attempts so far   decision
    ------------------------------  ------------------  ----------------  ------------------------------
    absent from the present set     -                   -                 phantom: no event, skipped
    present                         flags and listing   -                 messageNew
    present                         missing             < max - 1         retry: held for the next pass
    present                         missing             max - 1           give up: messageNew, partial

A held UID stops the pass there, exactly as a bounded pass stops at its first deferred
UID (:mod:`chalicelib.sync.passes`): UIDNEXT stays at it and HIGHESTMODSEQ at the
checkpoint's, so the next snapshot lists it (and what follows it) again. If it is gone
by then it is a phantom after all. A UID given up on is announced with what is known
(its UID and flags, if the flag FETCH returned them) and ``partial: true``: late and thin
beats silent. Attempts are counted by the caller between passes (in memory: a restart
starts the count again, still bounded).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from chalicelib.sync.uidset import EMPTY, UidSet

MAX_FETCH_ATTEMPTS = 3


@dataclass(frozen=True)
class FetchRetryPlan:
    """What to do with the new UIDs a FETCH did not answer for."""

    give_up: UidSet = EMPTY  # announce now, ``partial: true``
    retry: UidSet = EMPTY  # hold back: the pass stops at the lowest of them
    attempts: Mapping[int, int] = field(default_factory=dict)  # for each held UID, attempts made so far

    @property
    def stop_at(self) -> int | None:
        """The UID the pass stops at (its UIDNEXT), or None if nothing is held back."""
        return next(iter(self.retry), None)  # UidSet iterates in ascending order


def plan_fetch_retries(listed: UidSet, answered: UidSet, attempts: Mapping[int, int],
                       max_attempts: int = MAX_FETCH_ATTEMPTS) -> FetchRetryPlan:
    """``listed``: new UIDs the server says exist; ``answered``: those a FETCH returned in full;
    ``attempts``: unanswered FETCHes per UID in earlier passes."""
    if max_attempts < 1:
        raise ValueError("a message must be fetched at least once")
    missing = listed - answered
    made = {uid: attempts.get(uid, 0) + 1 for uid in missing}
    # Only UIDs below the first one still retried can be given up on now: the pass stops at
    # that one, and a later UID keeps its count until it comes first (so it is not recounted).
    first_retry = next((uid for uid in missing if made[uid] < max_attempts), None)
    give_up = UidSet(uid for uid, count in made.items()
                     if count >= max_attempts and (first_retry is None or uid < first_retry))
    retry = missing - give_up
    return FetchRetryPlan(give_up=give_up, retry=retry, attempts={uid: made[uid] for uid in retry})
