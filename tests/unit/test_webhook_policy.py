"""The retry policy: anchored slots, jitter, Retry-After, 410, giving up; SQS visibility limits."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.webhooks.client import parse_retry_after
from chalicelib.webhooks.policy import (
    JITTER_FRACTION,
    MAX_VISIBILITY_SECONDS,
    Verdict,
    decide,
    next_slot,
    slot_times,
    visibility_seconds,
)

DEFAULT_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
QUEUED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class _NoJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


def at(seconds: float) -> datetime:
    return QUEUED + timedelta(seconds=seconds)


def test_the_default_schedule_retries_for_more_than_three_days():
    assert slot_times(QUEUED, DEFAULT_SCHEDULE)[-1] - QUEUED > timedelta(days=3)
    assert len(DEFAULT_SCHEDULE) + 1 == 10  # attempts: the first plus one per step


@pytest.mark.parametrize(("status", "verdict"), [
    (200, Verdict.DELIVERED), (204, Verdict.DELIVERED), (299, Verdict.DELIVERED),
    (410, Verdict.DISABLE_ENDPOINT),
    (500, Verdict.RETRY), (503, Verdict.RETRY), (429, Verdict.RETRY), (404, Verdict.RETRY), (301, Verdict.RETRY),
    (None, Verdict.RETRY),
])
def test_what_each_answer_means_on_the_first_attempt(status, verdict):
    assert decide(status, None, queued_at=QUEUED, now=at(0.2), schedule=DEFAULT_SCHEDULE).verdict is verdict


@pytest.mark.parametrize(("failed_at", "expected_slot"), [
    (0.2, 5),          # first attempt fails -> the 5 s slot
    (5.3, 305),        # second -> 5 min after the first slot
    (305.1, 2105),     # third -> 30 min later
    (4000, 9305),      # an attempt that ran late still aims at the next slot ahead
])
def test_retries_aim_at_the_next_slot_counted_from_when_the_event_was_queued(failed_at, expected_slot):
    decision = decide(500, None, queued_at=QUEUED, now=at(failed_at), schedule=DEFAULT_SCHEDULE, rng=_NoJitter())
    assert decision.verdict is Verdict.RETRY
    assert decision.next_attempt_at == at(expected_slot)


def test_after_the_last_slot_it_gives_up():
    last = (slot_times(QUEUED, DEFAULT_SCHEDULE)[-1] - QUEUED).total_seconds()
    assert decide(500, None, queued_at=QUEUED, now=at(last + 1), schedule=DEFAULT_SCHEDULE).verdict is \
        Verdict.GIVE_UP


def test_an_event_that_waited_behind_a_failing_one_gets_only_the_slots_it_has_left():
    # Given an event queued 3.2 days ago whose first attempt fails now, just before its last slot
    last = (slot_times(QUEUED, DEFAULT_SCHEDULE)[-1] - QUEUED).total_seconds()
    decision = decide(None, None, queued_at=QUEUED, now=at(last - 60), schedule=DEFAULT_SCHEDULE, rng=_NoJitter())
    # Then one more attempt at the last slot, not a fresh 3 days
    assert decision.next_attempt_at == at(last)


def test_retry_after_is_a_lower_bound_for_throttling_answers():
    slot = decide(429, 2, queued_at=QUEUED, now=at(0.2), schedule=DEFAULT_SCHEDULE, rng=_NoJitter())
    assert slot.next_attempt_at == at(5)  # the schedule already waits longer
    later = decide(503, 120, queued_at=QUEUED, now=at(0.2), schedule=DEFAULT_SCHEDULE, rng=_NoJitter())
    assert later.next_attempt_at == at(120.2)
    ignored = decide(500, 120, queued_at=QUEUED, now=at(0.2), schedule=DEFAULT_SCHEDULE, rng=_NoJitter())
    assert ignored.next_attempt_at == at(5)  # Retry-After only counts with 429/503


def test_a_retry_after_beyond_the_last_slot_gives_up():
    decision = decide(429, 5 * 86400, queued_at=QUEUED, now=at(10), schedule=(5, 60))
    assert decision.verdict is Verdict.GIVE_UP


@given(failed_after=st.floats(min_value=0, max_value=300_000), seed=st.integers(0, 10_000))
def test_jitter_only_delays_and_by_at_most_a_tenth_of_the_step(failed_after, seed):
    now = at(failed_after)
    slot = next_slot(QUEUED, now, DEFAULT_SCHEDULE, random.Random(seed))
    exact = next_slot(QUEUED, now, DEFAULT_SCHEDULE, _NoJitter())
    if exact is None:
        assert slot is None
        return
    assert slot is not None and exact > now
    step = DEFAULT_SCHEDULE[slot_times(QUEUED, DEFAULT_SCHEDULE).index(exact)]
    assert exact <= slot <= exact + timedelta(seconds=JITTER_FRACTION * step)


@pytest.mark.parametrize(("wait", "expected"), [(0.2, 1), (5, 5), (4.01, 5), (-3, 0), (86400, MAX_VISIBILITY_SECONDS)])
def test_visibility_is_whole_seconds_within_sqs_limit(wait, expected):
    assert visibility_seconds(at(wait), at(0)) == expected


@pytest.mark.parametrize(("header", "seconds"), [
    ("120", 120.0), (" 7 ", 7.0), (None, None), ("", None), ("soon", None), ("-5", None),
    ("Sun, 01 Mar 2026 12:01:00 GMT", 60.0), ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),
])
def test_retry_after_headers_in_both_forms(header, seconds):
    assert parse_retry_after(header, now=QUEUED) == seconds
