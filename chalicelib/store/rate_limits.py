"""Fixed-window call counters in DynamoDB, shared by every API process.

A limit of N calls per window for one subject (an API token) must hold across all Lambda
instances, so the count cannot live in a process. One item per subject and window,
keyed by the window's start; a call takes one hit with one conditional UpdateItem:

    key = "<scope>#<subject>#<window start>"      hits   expiresAt
    verifyAccount#tok_1a2b#1764000000             7      1764000120

    UpdateItem  ADD hits 1, SET expiresAt = window end + grace
                IF attribute_not_exists(hits) OR hits < limit
        ok                       -> allowed
        ConditionalCheckFailed   -> refused until the window ends (Retry-After)

Invariants:
- at most ``limit`` calls are allowed per subject and window, whatever the concurrency:
  the check and the increment are one atomic write;
- a refused call is not counted (its condition fails before the ADD), so a client that
  keeps calling is free again as soon as the window ends;
- a new window is a new item, so correctness never waits for DynamoDB's TTL deletion
  (lazy, hours); TTL only keeps the table small.

Windows are aligned to the epoch (every minute on the minute for 60 s), read from the
caller's clock; Lambda hosts are NTP-synchronised, so skew moves a boundary by
milliseconds. A fixed window lets a subject make up to 2 x limit calls across one
boundary; for a deterrent that is the accepted price of one write per call.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import UpdateError
from pynamodb.models import Model

from chalicelib.settings import get_settings

_settings = get_settings()
# Counters outlive their window by this much before TTL may delete them.
EXPIRY_GRACE_SECONDS = 60


class RateLimitItem(Model):
    class Meta:
        table_name = _settings.table_name("rate-limits")
        region = _settings.aws_region

    key = UnicodeAttribute(hash_key=True)
    hits = NumberAttribute()
    expires_at = NumberAttribute(attr_name="expiresAt")  # epoch seconds, DynamoDB TTL


@dataclass(frozen=True)
class Window:
    """One fixed window: ``[start, start + seconds)`` in epoch seconds."""

    start: int
    seconds: int

    @property
    def end(self) -> int:
        return self.start + self.seconds

    def seconds_left(self, now: float) -> int:
        """Whole seconds until the window ends, at least 1 (a Retry-After value)."""
        return max(1, math.ceil(self.end - now))


def window_at(now: float, seconds: int) -> Window:
    """The window of length ``seconds`` that contains ``now``, aligned to the epoch."""
    return Window(start=int(now // seconds) * seconds, seconds=seconds)


def counter_key(scope: str, subject: str, window: Window) -> str:
    return f"{scope}#{subject}#{window.start}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int  # seconds until the window ends; when refused, when to come back


def _conditional_failure(exc: Exception) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def take(scope: str, subject: str, *, limit: int, window_seconds: int, now: float | None = None) -> Decision:
    """Count one call of ``subject`` against ``limit`` per window; refused calls are not counted."""
    now = time.time() if now is None else now
    window = window_at(now, window_seconds)
    item = RateLimitItem(counter_key(scope, subject, window))
    try:
        item.update(actions=[RateLimitItem.hits.add(1),
                             RateLimitItem.expires_at.set(window.end + EXPIRY_GRACE_SECONDS)],
                    condition=RateLimitItem.hits.does_not_exist() | (RateLimitItem.hits < limit))
    except UpdateError as exc:
        if _conditional_failure(exc):
            return Decision(allowed=False, retry_after=window.seconds_left(now))
        raise
    return Decision(allowed=True, retry_after=window.seconds_left(now))
