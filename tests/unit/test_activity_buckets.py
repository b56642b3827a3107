"""Activity buckets from delivery-log rows (pure): window bounds, bucketing, percentiles, the cap."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.services.activity_buckets import WINDOWS, percentile, summarize, window_bounds

NOW = datetime(2026, 12, 7, 10, 30, 25, tzinfo=UTC)
HOUR, DAY = WINDOWS["1h"], WINDOWS["24h"]


@dataclass(frozen=True)
class Row:
    event: str
    event_date: datetime
    status: str = "delivered"
    last_duration_ms: float | None = 10.0


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


@pytest.mark.parametrize(("window", "now", "since", "until"), [
    (HOUR, NOW, datetime(2026, 12, 7, 9, 31, tzinfo=UTC), datetime(2026, 12, 7, 10, 31, tzinfo=UTC)),
    (HOUR, datetime(2026, 12, 7, 10, 31, tzinfo=UTC),  # on a boundary: the bucket starting now is the last
     datetime(2026, 12, 7, 9, 32, tzinfo=UTC), datetime(2026, 12, 7, 10, 32, tzinfo=UTC)),
    (DAY, NOW, datetime(2026, 12, 6, 10, 45, tzinfo=UTC), datetime(2026, 12, 7, 10, 45, tzinfo=UTC)),
])
def test_the_window_ends_with_the_bucket_that_holds_now(window, now, since, until):
    assert window_bounds(window, now) == (since, until)


@pytest.mark.parametrize(("values", "rank", "expected"), [
    ([], 50, None),
    ([7.0], 99, 7.0),
    ([1.0, 2.0, 3.0, 4.0], 50, 2.0),       # nearest rank: ceil(0.5 * 4) = 2nd
    ([1.0, 2.0, 3.0, 4.0], 95, 4.0),
    ([float(n) for n in range(1, 101)], 95, 95.0),
    ([float(n) for n in range(1, 101)], 99, 99.0),
    ([float(n) for n in range(1, 101)], 50, 50.0),
])
def test_percentiles_are_nearest_rank(values, rank, expected):
    assert percentile(values, rank) == expected


def test_every_bucket_is_present_oldest_first_even_when_nothing_happened():
    activity = summarize([], HOUR, NOW)
    assert len(activity.buckets) == 60 and activity.bucket_seconds == 60
    assert activity.buckets[0].start == activity.since and activity.buckets[-1].start == activity.until - HOUR.bucket
    assert all(b.events == {} and b.deliveries == {} and b.latency_p95_ms is None for b in activity.buckets)
    assert activity.latency_ms == {50: None, 95: None, 99: None} and activity.events == 0
    assert len(summarize([], DAY, NOW).buckets) == 96


@pytest.mark.parametrize(("rows", "bucket_index", "events", "deliveries"), [
    ([Row("messageNew", ago(seconds=5))], -1, {"messageNew": 1}, {"delivered": 1}),
    ([Row("messageNew", ago(seconds=5)), Row("messageDeleted", ago(seconds=10), "failed"),
      Row("messageNew", ago(seconds=20), "pending")], -1,
     {"messageDeleted": 1, "messageNew": 2}, {"delivered": 1, "failed": 1, "pending": 1}),
    ([Row("messageNew", ago(minutes=2))], -3, {"messageNew": 1}, {"delivered": 1}),
    ([Row("messageNew", ago(minutes=59, seconds=25))], 0, {"messageNew": 1}, {"delivered": 1}),
])
def test_rows_land_in_the_bucket_of_their_detection_time(rows, bucket_index, events, deliveries):
    activity = summarize(rows, HOUR, NOW)
    bucket = activity.buckets[bucket_index]
    assert (bucket.events, bucket.deliveries) == (events, deliveries)
    assert sum(sum(b.events.values()) for b in activity.buckets) == len(rows) == activity.events


def test_rows_outside_the_window_are_ignored():
    since, until = window_bounds(HOUR, NOW)
    rows = [Row("messageNew", since - timedelta(microseconds=1)), Row("messageNew", until),
            Row("messageNew", since)]
    activity = summarize(rows, HOUR, NOW)
    assert activity.events == 1 and activity.buckets[0].events == {"messageNew": 1}


def test_latency_uses_only_rows_that_were_posted():
    rows = [Row("messageNew", ago(seconds=1), last_duration_ms=float(ms)) for ms in range(1, 101)]
    rows.append(Row("messageNew", ago(seconds=1), "skipped", last_duration_ms=None))
    activity = summarize(rows, HOUR, NOW)
    assert activity.latency_ms == {50: 50.0, 95: 95.0, 99: 99.0} and activity.latency_samples == 100
    assert activity.buckets[-1].latency_p95_ms == 95.0 and activity.events == 101


def test_a_capped_read_says_from_when_its_counts_are_complete():
    rows = [Row("messageNew", ago(minutes=1)), Row("messageNew", ago(minutes=7))]
    capped = summarize(rows, HOUR, NOW, capped=True)
    assert capped.capped and capped.covered_since == ago(minutes=7)
    whole = summarize(rows, HOUR, NOW)
    assert not whole.capped and whole.covered_since == whole.since
