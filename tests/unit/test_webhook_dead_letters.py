"""What a dead-lettered message says about its event, and what its log entry becomes (pure)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.store.deliveries import DeliveryOutcome, LoggedEvent, StoredDelivery, apply_outcome
from chalicelib.webhooks.dead_letters import DEAD_LETTERED, DeadLetter, dead_letter_entry, read_dead_letter

T0 = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
BODY = '{"id":"evt_1","account":"alice","event":"messageNew","date":"2026-11-21T05:59:57Z"}'
LOGGED = LoggedEvent("evt_1", "alice", "messageNew", datetime(2026, 11, 21, 5, 59, 57, tzinfo=UTC), BODY)
NOTE = "dead-lettered by the events queue after 50 receives without a logged outcome"
REDRIVEN = DeadLetter(LOGGED, "original", DEAD_LETTERED, note=NOTE)


def entry(status: str, *, run_id: str = "original", attempted: bool = True, **fields) -> StoredDelivery:
    return apply_outcome(None, LOGGED, DeliveryOutcome(status=status, run_id=run_id, attempted=attempted,
                                                       **fields), T0 - timedelta(minutes=30))


def record(body: str = BODY, **attributes: str) -> SQSRecord:
    return SQSRecord({
        "messageId": "m-1", "receiptHandle": "r-1", "body": body, "md5OfBody": "",
        "attributes": {"ApproximateReceiveCount": "51", "SentTimestamp": "1795243370000", "MessageGroupId": "alice"},
        "messageAttributes": {name: {"dataType": "String", "stringValue": value, "stringListValues": [],
                                     "binaryListValues": []} for name, value in attributes.items()},
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:imapless-events-dlq.fifo",
        "awsRegion": "us-east-1"})


# -- the entry ------------------------------------------------------------------------------------


def test_an_event_the_log_never_saw_becomes_failed_with_the_redrive_note():
    recorded = dead_letter_entry(None, REDRIVEN, T0)
    assert recorded is not None
    assert (recorded.status, recorded.reason, recorded.attempts, recorded.last_error, recorded.run_id) == \
        ("failed", DEAD_LETTERED, 0, NOTE, "original")
    assert (recorded.body, recorded.event_date, recorded.created_at, recorded.next_attempt_at) == \
        (BODY, LOGGED.event_date, T0, None)


def test_a_pending_event_becomes_failed_and_keeps_what_its_last_attempt_said():
    pending = entry("pending", status_code=500, error="HTTP 500", next_attempt_at=T0 + timedelta(minutes=5))
    recorded = dead_letter_entry(pending, REDRIVEN, T0)
    assert recorded is not None
    assert (recorded.status, recorded.reason, recorded.attempts) == ("failed", DEAD_LETTERED, 1)
    assert (recorded.last_status_code, recorded.last_error, recorded.next_attempt_at) == (500, "HTTP 500", None)
    assert (recorded.created_at, recorded.updated_at) == (pending.created_at, T0)


@pytest.mark.parametrize(("previous", "letter_run"), [
    (entry("delivered", status_code=200), "original"),  # never downgraded
    (entry("delivered", status_code=200, run_id="rpl_a"), "original"),  # ... whichever run delivered it
    (entry("failed", reason="retriesExhausted"), "original"),  # the consumer logged its own dead letter
    (entry("skipped", attempted=False, reason="webhooksDisabled"), "original"),
    (entry("pending", run_id="rpl_b"), "original"),  # a replay is under way: it settles the entry
], ids=["delivered", "delivered-by-a-replay", "failed-by-this-run", "skipped-by-this-run", "replay-under-way"])
def test_a_settled_entry_is_left_as_it_is(previous, letter_run):
    letter = DeadLetter(LOGGED, letter_run, DEAD_LETTERED, note=NOTE)
    assert dead_letter_entry(previous, letter, T0) is None


def test_a_failure_of_an_earlier_run_is_replaced_by_this_runs_dead_letter():
    earlier = entry("failed", run_id="rpl_a", status_code=503, error="HTTP 503", reason="retriesExhausted")
    recorded = dead_letter_entry(earlier, REDRIVEN, T0)
    assert recorded is not None
    assert (recorded.run_id, recorded.reason, recorded.last_status_code, recorded.last_error) == \
        ("original", DEAD_LETTERED, 503, "HTTP 503")


def test_an_entry_written_before_runs_were_logged_counts_as_the_original_run():
    legacy = dataclasses.replace(entry("failed", reason="retriesExhausted"), run_id=None)
    assert dead_letter_entry(legacy, REDRIVEN, T0) is None


def test_the_consumers_own_dead_letter_not_logged_yet_carries_its_reason_and_status():
    letter = DeadLetter(LOGGED, "original", "endpointGone", status_code=410)
    recorded = dead_letter_entry(None, letter, T0)
    assert recorded is not None
    assert (recorded.status, recorded.reason, recorded.last_status_code, recorded.last_error) == \
        ("failed", "endpointGone", 410, None)


# -- the message ----------------------------------------------------------------------------------


def test_a_redriven_message_is_a_dead_letter_of_its_run_with_the_receive_count():
    assert read_dead_letter(record(), 50) == REDRIVEN
    replayed = read_dead_letter(record(imaplessRun="rpl_0123456789abcdef"), 50)
    assert replayed is not None and replayed.run_id == "rpl_0123456789abcdef"
    unknown = read_dead_letter(record(), None)
    assert unknown is not None and unknown.note == "dead-lettered by the events queue without a logged outcome"


def test_the_consumers_own_dead_letter_says_why_which_run_and_the_last_status():
    letter = read_dead_letter(record(failureReason="endpointGone", runId="rpl_0123456789abcdef",
                                     lastStatusCode="410"), 50)
    assert letter == DeadLetter(LOGGED, "rpl_0123456789abcdef", "endpointGone", status_code=410)


def test_a_message_that_is_not_an_event_is_no_dead_letter():
    assert read_dead_letter(record("not json {", failureReason="poison"), 50) is None
