"""When to try a webhook again, and when to stop: pure functions, no I/O.

The retry schedule (``IMAPLESS_WEBHOOK_RETRY_SCHEDULE``, default 5 s, 5 min, 30 min, 2 h,
5 h, 10 h, 14 h, 20 h, 24 h: 3.2 days) is *anchored to when the event was queued*: attempt
slots fall at ``queued + 5 s``, ``queued + 5 min 5 s``, ... A failed attempt is retried at
the next slot still ahead, plus up to 10 % jitter of that step (receivers that fail
together do not come back together)::

    queued      slot 1     slot 2         slot 3                ...    last slot
      |--5s------|--5min----|----30min-----|--------- ... --------------|
      ^ attempt  ^ retry    ^ retry        ^ retry                      ^ final attempt -> give up

Why anchored, not counted from each attempt: events of one account are delivered in
order, so while the first one is being retried the others wait behind it. When it finally
gives up after 3.2 days, the events behind it have used their window too; anchored slots
give each of them the slots it has left (usually one attempt) instead of 3.2 fresh days
each, so a dead endpoint's backlog drains in minutes, and every event it drains is in the
delivery log and the dead-letter queue, ready for a replay.

Answers:

    2xx                         delivered
    410 Gone                    endpoint disabled, event failed (dead-lettered)
    429/503 with Retry-After    next slot, but never sooner than Retry-After; give up if
                                the receiver asks us back after the last slot
    anything else / no answer   next slot; give up after the last one

SQS holds a message invisible for at most 12 hours per receive; a longer wait becomes a
chain of shorter ones (:func:`visibility_seconds`), each re-checked against the stored
next attempt time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

JITTER_FRACTION = 0.1
# SQS's per-receive limit is 12 h; keep a margin for the time the batch itself takes.
MAX_VISIBILITY_SECONDS = 43200 - 600
MAX_RETRY_AFTER_SECONDS = 86400
THROTTLE_STATUSES = frozenset({429, 503})
GONE_STATUS = 410
_JITTER = random.Random()  # noqa: S311 - spreads retries; nothing secret depends on it


class Verdict(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    GIVE_UP = "give_up"
    DISABLE_ENDPOINT = "disable_endpoint"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    next_attempt_at: datetime | None = None


def slot_times(queued_at: datetime, schedule: Sequence[int]) -> list[datetime]:
    """When each retry is due, from the moment the event was queued."""
    slots, elapsed = [], 0
    for step in schedule:
        elapsed += step
        slots.append(queued_at + timedelta(seconds=elapsed))
    return slots


def next_slot(queued_at: datetime, now: datetime, schedule: Sequence[int], rng: random.Random) -> datetime | None:
    """The next retry slot after ``now`` with jitter, or None when the schedule is used up."""
    for step, slot in zip(schedule, slot_times(queued_at, schedule), strict=True):
        if slot > now:
            return slot + timedelta(seconds=rng.uniform(0, JITTER_FRACTION * step))
    return None


def decide(status_code: int | None, retry_after_seconds: float | None, *, queued_at: datetime, now: datetime,
           schedule: Sequence[int], rng: random.Random | None = None) -> Decision:
    """What to do after one attempt answered ``status_code`` (None: no HTTP answer)."""
    if status_code is not None and 200 <= status_code < 300:
        return Decision(Verdict.DELIVERED)
    if status_code == GONE_STATUS:
        return Decision(Verdict.DISABLE_ENDPOINT)
    slot = next_slot(queued_at, now, schedule, rng or _JITTER)
    if slot is None:
        return Decision(Verdict.GIVE_UP)
    if status_code in THROTTLE_STATUSES and retry_after_seconds is not None:
        asked = now + timedelta(seconds=min(retry_after_seconds, MAX_RETRY_AFTER_SECONDS))
        last_slot = slot_times(queued_at, schedule)[-1]
        if asked > last_slot + timedelta(seconds=JITTER_FRACTION * schedule[-1]):
            return Decision(Verdict.GIVE_UP)
        slot = max(slot, asked)
    return Decision(Verdict.RETRY, next_attempt_at=slot)


def visibility_seconds(until: datetime, now: datetime) -> int:
    """Whole seconds to hide a message so it comes back at ``until`` (capped at SQS's limit)."""
    return max(0, min(MAX_VISIBILITY_SECONDS, math.ceil((until - now).total_seconds())))
