"""The dead-letter recorder: events SQS moves to the webhook DLQ are in the delivery log and replayable.

The events queue and its DLQ are the template's (moto): the redrive policy's own
``maxReceiveCount`` moves the messages. The recorder is the Lambda handler ``app.py``
subscribes to the DLQ, run by :class:`local.dispatcher.QueuePoller` as under ``make run``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.webhook_receiver import WebhookReceiver, verify_signature

REDRIVE_NOTE = "dead-lettered by the events queue after 50 receives without a logged outcome"


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_events_the_queue_dead_letters_are_logged_failed_and_a_replay_delivers_each_once(webhooks, receiver, api):
    # Given two events of one account that the consumer never finished (it failed on every
    # pass), so SQS's redrive moved both, the second held back behind the first
    secret = webhooks.configure_with_secret(receiver.url())
    since = datetime.now(UTC) - timedelta(seconds=1)
    events = [webhooks.event("acc-redriven", "messageNew", n=n) for n in range(2)]
    webhooks.publish(*events)
    webhooks.fail_until_dead_lettered(2)
    assert webhooks.queue_counts() == (0, 0)
    assert [webhooks.delivery(e.id) for e in events] == [None, None]

    # When the dead-letter recorder runs
    webhooks.record_dead_letters()

    # Then both are in the log as failed, with why, and the DLQ is empty
    logged = [webhooks.delivery(e.id) for e in events]
    assert [(d.status, d.reason, d.attempts, d.last_error, d.body) for d in logged] == \
        [("failed", "deadLettered", 0, REDRIVE_NOTE, e.to_json()) for e in events]
    assert webhooks.queue_counts(webhooks.dlq_url) == (0, 0)
    # ... listed like any failed delivery
    listed = api.get(f"/v1/webhooks/deliveries?account=acc-redriven&status=failed&since={iso(since)}")
    assert listed.status == 200, listed.body
    assert [(d["id"], d["status"], d["reason"], d["lastError"]) for d in listed.json["deliveries"]] == \
        [(e.id, "failed", "deadLettered", REDRIVE_NOTE) for e in reversed(events)]
    assert receiver.requests == []

    # When the failed events are replayed
    response = api.post("/v1/webhooks/replay", {"since": iso(since), "account": "acc-redriven", "status": "failed"})
    assert response.status == 200, response.body
    assert response.json["replayed"] == 2
    webhooks.run_until(lambda: all(webhooks.delivery(e.id).status == "delivered" for e in events))
    webhooks.run_for(1.5)

    # Then each reached the receiver exactly once, in order, with its original bytes, signed
    assert [(r.webhook_id, r.body) for r in receiver.requests] == [(e.id, e.to_json().encode()) for e in events]
    assert all(verify_signature(secret, r.headers, r.body) for r in receiver.requests)


def test_a_dead_letter_of_a_delivered_event_or_one_received_twice_changes_nothing(webhooks, receiver):
    # Given an event that was delivered, and a copy of it in the DLQ (a redrive that raced its delete)
    webhooks.configure_with_secret(receiver.url())
    delivered, redriven = webhooks.event("acc-dl-once"), webhooks.event("acc-dl-twice")
    webhooks.publish(delivered)
    webhooks.run_until(lambda: (d := webhooks.delivery(delivered.id)) is not None and d.status == "delivered")
    before = webhooks.delivery(delivered.id)
    webhooks.sqs.send_message(QueueUrl=webhooks.dlq_url, MessageBody=delivered.to_json(),
                              MessageGroupId=delivered.account, MessageDeduplicationId="copy-of-delivered")
    # ... and an event SQS dead-lettered whose DLQ message is handed to the recorder twice
    webhooks.publish(redriven)
    webhooks.fail_until_dead_lettered(2)
    poller = webhooks.dead_letter_poller()
    messages = poller.receive()
    assert len(messages) == 2

    # When the recorder handles that batch twice (SQS delivers at least once)
    poller.handle(messages)
    first = webhooks.delivery(redriven.id)
    poller.handle(messages)

    # Then the delivered event is still delivered, untouched, and the other was written once
    assert webhooks.delivery(delivered.id) == before
    assert webhooks.delivery(redriven.id) == first
    assert (first.status, first.reason) == ("failed", "deadLettered")
    assert webhooks.queue_counts(webhooks.dlq_url) == (0, 0)
    assert [r.webhook_id for r in receiver.requests] == [delivered.id]


def test_a_message_that_is_not_an_event_is_dropped_without_holding_back_its_group(webhooks):
    # Given a poison message in the DLQ followed by a dead-lettered event of the same group
    event = webhooks.event("acc-dl-poison")
    webhooks.sqs.send_message(QueueUrl=webhooks.dlq_url, MessageBody="not json {", MessageGroupId=event.account,
                              MessageDeduplicationId="poison-dl",
                              MessageAttributes={"failureReason": {"DataType": "String", "StringValue": "poison"}})
    webhooks.publish(event)
    webhooks.fail_until_dead_lettered(2)

    # When the recorder runs
    webhooks.record_dead_letters()

    # Then the event is logged and nothing is left in the DLQ
    assert webhooks.delivery(event.id).status == "failed"
    assert webhooks.queue_counts(webhooks.dlq_url) == (0, 0)


def test_a_dead_letter_of_a_deleted_account_whose_id_was_registered_again_is_not_logged(webhooks, api):
    # Given an event detected before its account id was registered (an event of the deleted account)
    old = webhooks.event("acc-dl-reborn").model_copy(update={"date": datetime.now(UTC) - timedelta(minutes=5)})
    response = api.post("/v1/account", {
        "account": "acc-dl-reborn", "email": "reborn@example.test", "verify": False,
        "imap": {"host": "127.0.0.1", "port": 1143, "auth": {"user": "reborn", "pass": "secret"}}})
    assert response.status == 200, response.body
    try:
        webhooks.sqs.send_message(QueueUrl=webhooks.dlq_url, MessageBody=old.to_json(),
                                  MessageGroupId=old.account, MessageDeduplicationId="reborn-old")

        # When the recorder runs
        webhooks.record_dead_letters()

        # Then it reaches neither the new account's log nor stays in the DLQ
        assert webhooks.delivery(old.id) is None
        assert webhooks.queue_counts(webhooks.dlq_url) == (0, 0)
    finally:
        api.delete("/v1/account/acc-dl-reborn")
