"""Activity over a time window, from delivery-log rows (pure: no clock, no I/O).

    window "1h"   60 buckets of 1 minute        window "24h"   96 buckets of 15 minutes
    until = the end of the bucket holding ``now``;  since = until - window

    row (event type, detection date, status, last POST's duration)
      -> bucket of its detection date       events[type] += 1, deliveries[status] += 1
      -> durations of rows that were POSTed  p50 / p95 / p99 of the window, p95 of each bucket

Invariants:
- Every bucket is present, empty ones included, oldest first, so a chart's bar count is the
  bucket count whatever happened.
- A row outside [since, until) is ignored (the store reads by sort key, which is inclusive).
- Percentiles are nearest-rank over the recorded durations (an observed value, never an
  interpolation); None when nothing was POSTed.
- A read that stopped at its cap (``capped``) covers only [covered_since, until): the rows
  come newest first, so the recent buckets are complete and the older ones are not; the
  answer says so instead of pretending the older buckets were quiet.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

WindowName = Literal["1h", "24h"]


@dataclass(frozen=True)
class Window:
    span: timedelta
    bucket: timedelta


WINDOWS: dict[str, Window] = {
    "1h": Window(span=timedelta(hours=1), bucket=timedelta(minutes=1)),
    "24h": Window(span=timedelta(hours=24), bucket=timedelta(minutes=15)),
}
PERCENTILES = (50, 95, 99)


class ActivitySample(Protocol):
    @property
    def event(self) -> str: ...
    @property
    def event_date(self) -> datetime: ...
    @property
    def status(self) -> str: ...
    @property
    def last_duration_ms(self) -> float | None: ...


@dataclass(frozen=True)
class Bucket:
    start: datetime
    events: dict[str, int]
    deliveries: dict[str, int]
    latency_p95_ms: float | None


@dataclass(frozen=True)
class Activity:
    since: datetime
    until: datetime
    bucket_seconds: int
    buckets: tuple[Bucket, ...]
    latency_ms: dict[int, float | None]  # percentile -> milliseconds
    latency_samples: int
    events: int
    capped: bool
    covered_since: datetime


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_bounds(window: Window, now: datetime) -> tuple[datetime, datetime]:
    """[since, until): ``until`` is the end of the bucket that holds ``now``."""
    elapsed = (now.astimezone(UTC) - _EPOCH) // window.bucket
    until = _EPOCH + (elapsed + 1) * window.bucket
    return until - window.span, until


def percentile(ordered: Sequence[float], rank: int) -> float | None:
    """Nearest-rank percentile of an ascending sequence (None when empty)."""
    if not ordered:
        return None
    return ordered[max(1, math.ceil(rank / 100 * len(ordered))) - 1]


def summarize(rows: Iterable[ActivitySample], window: Window, now: datetime, *, capped: bool = False) -> Activity:
    """The window's buckets and latency percentiles; ``capped``: the rows stopped at the read's limit."""
    since, until = window_bounds(window, now)
    count = int(window.span / window.bucket)
    events: list[Counter[str]] = [Counter() for _ in range(count)]
    statuses: list[Counter[str]] = [Counter() for _ in range(count)]
    durations: list[list[float]] = [[] for _ in range(count)]
    oldest = until
    total = 0
    for row in rows:
        moment = row.event_date.astimezone(UTC)
        if not since <= moment < until:
            continue
        index = (moment - since) // window.bucket
        events[index][row.event] += 1
        statuses[index][row.status] += 1
        if row.last_duration_ms is not None:
            durations[index].append(row.last_duration_ms)
        oldest = min(oldest, moment)
        total += 1
    every = sorted(d for bucket in durations for d in bucket)
    buckets = tuple(Bucket(start=since + n * window.bucket, events=dict(sorted(events[n].items())),
                           deliveries=dict(sorted(statuses[n].items())),
                           latency_p95_ms=percentile(sorted(durations[n]), 95)) for n in range(count))
    return Activity(since=since, until=until, bucket_seconds=int(window.bucket.total_seconds()), buckets=buckets,
                    latency_ms={rank: percentile(every, rank) for rank in PERCENTILES}, latency_samples=len(every),
                    events=total, capped=capped, covered_since=oldest if capped else since)
