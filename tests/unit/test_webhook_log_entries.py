"""How one pass's outcome turns the previous delivery-log entry into the next (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.store.deliveries import DeliveryOutcome, LoggedEvent, apply_outcome

T0 = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
LOGGED = LoggedEvent("evt_1", "alice", "messageNew", T0 - timedelta(seconds=3), '{"id":"evt_1"}')


def outcome(status: str, *, attempted: bool = True, **fields) -> DeliveryOutcome:
    return DeliveryOutcome(status=status, run_id=fields.pop("run_id", "original"), attempted=attempted, **fields)


def test_a_first_delivery_creates_the_entry():
    entry = apply_outcome(None, LOGGED, outcome("delivered", status_code=200), T0)
    assert (entry.status, entry.attempts, entry.last_status_code, entry.last_error) == ("delivered", 1, 200, None)
    assert entry.created_at == entry.updated_at == entry.last_attempt_at == entry.delivered_at == T0
    assert (entry.body, entry.event_date, entry.account) == (LOGGED.body, LOGGED.event_date, "alice")


def test_a_retry_then_a_success_counts_both_attempts_and_keeps_the_creation_time():
    pending = apply_outcome(None, LOGGED, outcome("pending", status_code=500, error="HTTP 500",
                                                  next_attempt_at=T0 + timedelta(seconds=5)), T0)
    later = T0 + timedelta(seconds=6)
    done = apply_outcome(pending, LOGGED, outcome("delivered", status_code=204), later)
    assert (pending.status, pending.next_attempt_at, pending.delivered_at) == ("pending", T0 + timedelta(seconds=5),
                                                                               None)
    assert (done.status, done.attempts, done.last_status_code, done.last_error) == ("delivered", 2, 204, None)
    assert (done.created_at, done.updated_at, done.delivered_at, done.next_attempt_at) == (T0, later, later, None)


def test_a_skip_after_attempts_keeps_what_the_last_attempt_said():
    failed = apply_outcome(None, LOGGED, outcome("pending", status_code=503, error="HTTP 503"), T0)
    skipped = apply_outcome(failed, LOGGED, outcome("skipped", attempted=False, reason="webhooksDisabled"),
                            T0 + timedelta(minutes=1))
    assert (skipped.status, skipped.reason, skipped.attempts) == ("skipped", "webhooksDisabled", 1)
    assert (skipped.last_status_code, skipped.last_error, skipped.last_attempt_at) == (503, "HTTP 503", T0)


def test_a_delivery_found_already_done_keeps_the_first_delivery_time():
    delivered = apply_outcome(None, LOGGED, outcome("delivered", status_code=200), T0)
    again = apply_outcome(delivered, LOGGED, outcome("delivered", attempted=False, status_code=200),
                          T0 + timedelta(minutes=1))
    assert (again.attempts, again.delivered_at, again.updated_at) == (1, T0, T0 + timedelta(minutes=1))


def test_a_replay_run_replaces_the_run_and_counts_on():
    delivered = apply_outcome(None, LOGGED, outcome("delivered", status_code=200), T0)
    replayed = apply_outcome(delivered, LOGGED, outcome("delivered", status_code=200, run_id="rpl_1"),
                             T0 + timedelta(hours=1))
    assert (replayed.run_id, replayed.attempts, replayed.delivered_at) == ("rpl_1", 2, T0 + timedelta(hours=1))


def test_each_post_is_kept_with_its_duration_and_answer_up_to_the_last_five():
    from chalicelib.store.deliveries import ANSWER_CHARS, ATTEMPT_HISTORY

    entry = None
    for n in range(ATTEMPT_HISTORY + 2):
        entry = apply_outcome(entry, LOGGED, outcome("pending", status_code=500, error="HTTP 500",
                                                     duration_ms=float(n), answer="x" * 1000),
                              T0 + timedelta(seconds=n))
    assert entry is not None and entry.attempts == ATTEMPT_HISTORY + 2
    assert [a.duration_ms for a in entry.attempt_log] == [float(n) for n in range(2, ATTEMPT_HISTORY + 2)]
    assert all(a.answer == "x" * ANSWER_CHARS and a.status_code == 500 for a in entry.attempt_log)
    assert entry.last_duration_ms == float(ATTEMPT_HISTORY + 1)
    # A pass that did not POST (a skip) adds no attempt and keeps the last duration
    skipped = apply_outcome(entry, LOGGED, outcome("skipped", attempted=False, reason="webhooksDisabled"), T0)
    assert skipped.attempt_log == entry.attempt_log and skipped.last_duration_ms == entry.last_duration_ms
