"""Fixed rate-limit windows: where a window starts and ends, and what Retry-After says."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.store.rate_limits import Window, counter_key, window_at


@pytest.mark.parametrize(("now", "start", "retry_after"), [
    (1_764_000_000.0, 1_764_000_000, 60),   # first instant of a window: a full minute to wait
    (1_764_000_000.2, 1_764_000_000, 60),   # rounded up: never earlier than the window's end
    (1_764_000_030.0, 1_764_000_000, 30),
    (1_764_000_059.5, 1_764_000_000, 1),
    (1_764_000_059.999, 1_764_000_000, 1),  # at least 1 s
    (1_764_000_060.0, 1_764_000_060, 60),   # the next window
])
def test_a_minute_window_contains_now_and_ends_on_the_minute(now, start, retry_after):
    window = window_at(now, 60)
    assert (window.start, window.end) == (start, start + 60)
    assert window.seconds_left(now) == retry_after


def test_calls_in_one_window_share_a_counter_and_the_next_window_starts_from_zero():
    first, same, next_one = (window_at(t, 60) for t in (1_764_000_001.0, 1_764_000_059.9, 1_764_000_060.0))
    assert counter_key("verifyAccount", "tok_1", first) == counter_key("verifyAccount", "tok_1", same)
    assert counter_key("verifyAccount", "tok_1", first) != counter_key("verifyAccount", "tok_1", next_one)


def test_tokens_and_scopes_never_share_a_counter():
    window = Window(start=1_764_000_000, seconds=60)
    keys = {counter_key(scope, subject, window) for scope in ("verifyAccount", "other") for subject in ("a", "b")}
    assert len(keys) == 4


@given(now=st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False),
       seconds=st.sampled_from([1, 10, 60, 3600]))
def test_every_instant_is_in_exactly_the_window_aligned_before_it(now, seconds):
    window = window_at(now, seconds)
    assert window.start <= now < window.end
    assert window.start % seconds == 0
    assert 1 <= window.seconds_left(now) <= seconds
