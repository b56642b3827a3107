"""The AWS work of one SQS batch: one log read, one log write, idempotency locks only where
two consumers can overlap, and nothing deleted before its log entry is written.

Each test hands a batch the (moto) FIFO queue really gave out to the Lambda handler, with
a spy on botocore's API call method counting what reached the emulator.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


class AwsCalls:
    """Counts (operation, table) of every AWS call made while installed; can make one fail."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str | None]] = Counter()
        self.failing: set[str] = set()

    def of_table(self, short_name: str) -> dict[str, int]:
        from chalicelib.settings import get_settings

        table = get_settings().table_name(short_name)
        return {operation: n for (operation, name), n in self.counts.items() if name == table}


def _table_of(operation: str, params: dict[str, Any]) -> str | None:
    if "TableName" in params:
        return params["TableName"]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return ",".join(params["RequestItems"])
    return None


@pytest.fixture
def aws_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsCalls]:
    calls = AwsCalls()
    real_call = BaseClient._make_api_call

    def spy(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        calls.counts[(operation, _table_of(operation, params))] += 1
        if operation in calls.failing:
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, operation)
        return real_call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", spy)
    yield calls


def receive_batch(webhooks, expected: int) -> list[dict[str, Any]]:
    messages = webhooks.sqs.receive_message(QueueUrl=webhooks.queue_url, MaxNumberOfMessages=10,
                                            MessageSystemAttributeNames=["All"],
                                            MessageAttributeNames=["All"])["Messages"]
    assert len(messages) == expected
    return messages


def run_handler(webhooks, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Lambda's invocation of the consumer on ``messages``, then its deletes of what succeeded."""
    from app import deliver_webhooks
    from local.dispatcher import LocalLambdaContext, lambda_sqs_event

    arn = webhooks.sqs.get_queue_attributes(QueueUrl=webhooks.queue_url,
                                            AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    response = deliver_webhooks(lambda_sqs_event(messages, arn, "us-east-1"), LocalLambdaContext())
    failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
    done = [m for m in messages if m["MessageId"] not in failed]
    if done:
        webhooks.sqs.delete_message_batch(QueueUrl=webhooks.queue_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
    return response


def idempotency_record_ids() -> set[str]:
    from chalicelib.settings import get_settings

    client = boto3.client("dynamodb", region_name=get_settings().aws_region)
    items = client.scan(TableName=get_settings().table_name("webhook-idempotency"))["Items"]
    return {item["id"]["S"] for item in items}


def test_a_batch_reads_and_writes_the_log_once_and_takes_no_idempotency_lock(webhooks, receiver, aws_calls):
    # Given ten events of three accounts in the queue
    webhooks.configure_with_secret(receiver.url())
    events = [webhooks.event(f"acc-batch-{n % 3}", n=n) for n in range(10)]
    webhooks.publish(*events)
    messages = receive_batch(webhooks, 10)
    aws_calls.counts.clear()

    # When the handler gets them as one batch
    response = run_handler(webhooks, messages)

    # Then all ten were POSTed, with one BatchGetItem and one BatchWriteItem on the log ...
    assert response["batchItemFailures"] == []
    assert sorted(r.webhook_id for r in receiver.requests) == sorted(e.id for e in events)
    assert aws_calls.of_table("webhook-deliveries") == {"BatchGetItem": 1, "BatchWriteItem": 1}
    # ... and none on the idempotency table (first receives cannot overlap another consumer)
    assert aws_calls.of_table("webhook-idempotency") == {}
    # ... and the log holds every event, delivered after one attempt
    for event in events:
        logged = webhooks.delivery(event.id)
        assert (logged.status, logged.attempts, logged.last_status_code, logged.run_id) == \
            ("delivered", 1, 200, "original")
        assert logged.delivered_at is not None and logged.created_at == logged.updated_at


def test_an_event_already_delivered_is_not_posted_again_from_a_later_batch(webhooks, receiver, aws_calls):
    # Given an event that was delivered
    webhooks.configure_with_secret(receiver.url())
    event = webhooks.event("acc-later")
    webhooks.publish(event)
    run_handler(webhooks, receive_batch(webhooks, 1))
    before = webhooks.delivery(event.id)

    # When the watcher emits it again later (a new deduplication id) and a batch carries it
    webhooks.sqs.send_message(QueueUrl=webhooks.queue_url, MessageBody=event.to_json(),
                              MessageGroupId=event.account, MessageDeduplicationId=event.id + "-later")
    aws_calls.counts.clear()
    response = run_handler(webhooks, receive_batch(webhooks, 1))

    # Then it is deleted without a POST, found by the batch's log read, and its entry is untouched
    assert response["batchItemFailures"] == []
    assert [r.webhook_id for r in receiver.requests] == [event.id]
    assert aws_calls.of_table("webhook-deliveries") == {"BatchGetItem": 1}
    assert webhooks.delivery(event.id) == before
    assert webhooks.queue_counts() == (0, 0)


def test_two_records_of_one_event_in_one_batch_are_posted_once(webhooks, receiver, aws_calls):
    # Given the same event queued twice (two deduplication ids) behind another event of its account
    webhooks.configure_with_secret(receiver.url())
    first, twice = webhooks.event("acc-twice", n=0), webhooks.event("acc-twice", n=1)
    webhooks.publish(first, twice)
    webhooks.sqs.send_message(QueueUrl=webhooks.queue_url, MessageBody=twice.to_json(),
                              MessageGroupId=twice.account, MessageDeduplicationId=twice.id + "-again")
    messages = receive_batch(webhooks, 3)
    aws_calls.counts.clear()

    # When one batch carries all three
    response = run_handler(webhooks, messages)

    # Then the repeated event was POSTed once, in order, and counted once in one log write
    assert response["batchItemFailures"] == []
    assert [r.webhook_id for r in receiver.requests] == [first.id, twice.id]
    assert aws_calls.of_table("webhook-deliveries") == {"BatchGetItem": 1, "BatchWriteItem": 1}
    assert webhooks.delivery(twice.id).attempts == 1
    assert webhooks.queue_counts() == (0, 0)


def test_a_redelivered_record_goes_through_the_idempotency_lock(webhooks, receiver, aws_calls):
    # Given an event whose first receive ended without a result (its consumer vanished)
    webhooks.configure_with_secret(receiver.url())
    event = webhooks.event("acc-again")
    webhooks.publish(event)
    lost = receive_batch(webhooks, 1)[0]
    webhooks.sqs.change_message_visibility(QueueUrl=webhooks.queue_url, ReceiptHandle=lost["ReceiptHandle"],
                                           VisibilityTimeout=0)
    locks_before = idempotency_record_ids()
    aws_calls.counts.clear()

    # When it is received a second time and handled
    again = receive_batch(webhooks, 1)
    assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    response = run_handler(webhooks, again)

    # Then it was delivered inside a Powertools idempotency record (lock taken, then completed)
    assert response["batchItemFailures"] == []
    assert [r.webhook_id for r in receiver.requests] == [event.id]
    calls = aws_calls.of_table("webhook-idempotency")
    assert calls.get("PutItem") == 1 and calls.get("UpdateItem") == 1
    assert len(idempotency_record_ids() - locks_before) == 1
    assert webhooks.delivery(event.id).status == "delivered"


def test_a_redelivered_record_whose_lock_cannot_be_completed_is_logged_delivered_and_not_posted_again(
        webhooks, receiver, aws_calls):
    # Given a record received a second time, and an idempotency table that refuses to complete its lock
    webhooks.configure_with_secret(receiver.url())
    event = webhooks.event("acc-lock-unsaved")
    webhooks.publish(event)
    lost = receive_batch(webhooks, 1)[0]
    webhooks.sqs.change_message_visibility(QueueUrl=webhooks.queue_url, ReceiptHandle=lost["ReceiptHandle"],
                                           VisibilityTimeout=0)
    again = receive_batch(webhooks, 1)
    aws_calls.failing.add("UpdateItem")

    # When it is handled (the POST succeeds, completing the Powertools record fails)
    response = run_handler(webhooks, again)

    # Then the known outcome is logged and the record deleted: nothing is left to POST it again
    assert response["batchItemFailures"] == []
    assert [r.webhook_id for r in receiver.requests] == [event.id]
    assert webhooks.delivery(event.id).status == "delivered"
    assert webhooks.queue_counts() == (0, 0)


def test_a_log_write_failure_keeps_the_records_in_the_queue_until_their_entry_is_written(webhooks, receiver,
                                                                                          aws_calls):
    # Given two events of two accounts and a log that refuses writes
    webhooks.configure_with_secret(receiver.url())
    events = [webhooks.event("acc-nolog-a"), webhooks.event("acc-nolog-b")]
    webhooks.publish(*events)
    messages = receive_batch(webhooks, 2)
    aws_calls.failing.add("BatchWriteItem")

    # When the batch is handled
    response = run_handler(webhooks, messages)

    # Then both records are reported failed, so nothing was deleted: both are hidden in the queue
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == \
        sorted(m["MessageId"] for m in messages)
    assert webhooks.queue_counts() == (0, 2)
    assert all(webhooks.delivery(e.id) is None for e in events)

    # When the log works again and the records come back
    aws_calls.failing.clear()
    for message in messages:
        webhooks.sqs.change_message_visibility(QueueUrl=webhooks.queue_url, ReceiptHandle=message["ReceiptHandle"],
                                               VisibilityTimeout=0)
    response = run_handler(webhooks, receive_batch(webhooks, 2))

    # Then they are delivered again (at least once: same webhook-id) and logged this time
    assert response["batchItemFailures"] == []
    assert sorted(r.webhook_id for r in receiver.requests) == sorted([e.id for e in events] * 2)
    assert all(webhooks.delivery(e.id).status == "delivered" for e in events)
    assert webhooks.queue_counts() == (0, 0)


def test_an_unreadable_log_fails_the_batch_without_posting(webhooks, receiver, aws_calls):
    # Given an event and a log that cannot be read
    webhooks.configure_with_secret(receiver.url())
    event = webhooks.event("acc-noread")
    webhooks.publish(event)
    messages = receive_batch(webhooks, 1)
    aws_calls.failing.add("BatchGetItem")

    # When the batch is handled
    response = run_handler(webhooks, messages)

    # Then nothing was sent and the record stays queued (hidden until a retry)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [messages[0]["MessageId"]]
    assert receiver.requests == []
    assert webhooks.queue_counts() == (0, 1)

    # When the log is readable again and the record comes back, it is delivered once
    aws_calls.failing.clear()
    webhooks.sqs.change_message_visibility(QueueUrl=webhooks.queue_url, ReceiptHandle=messages[0]["ReceiptHandle"],
                                           VisibilityTimeout=0)
    assert run_handler(webhooks, receive_batch(webhooks, 1))["batchItemFailures"] == []
    assert [r.webhook_id for r in receiver.requests] == [event.id]


def test_the_accounts_of_a_batch_are_read_at_once_and_again_by_the_next_batch(webhooks, receiver, api, aws_calls):
    # Given one of three accounts sending elsewhere
    webhooks.configure_with_secret(receiver.url())
    accounts = ["acc-prefetch-0", "acc-prefetch-1", "acc-prefetch-2"]
    with WebhookReceiver() as own_receiver:
        for account in accounts:
            assert api.post("/v1/account", {"account": account, "email": f"{account}@example.test", "verify": False,
                                            "imap": {"host": "127.0.0.1", "port": 1143,
                                                     "auth": {"user": account, "pass": "secret"}}}).status == 200
        assert api.put(f"/v1/account/{accounts[0]}", {"webhooks": own_receiver.url("/own")}).status == 200
        try:
            events = [webhooks.event(accounts[n % 3], n=n) for n in range(9)]
            webhooks.publish(*events)
            aws_calls.counts.clear()

            # When a batch carrying all three accounts is handled, then another one
            run_handler(webhooks, receive_batch(webhooks, 9))
            first_batch = aws_calls.of_table("accounts")
            webhooks.publish(*(later := [webhooks.event(account) for account in accounts]))
            aws_calls.counts.clear()
            run_handler(webhooks, receive_batch(webhooks, 3))

            # Then each batch read its accounts with one BatchGetItem (nothing kept across batches:
            # an override changed in between applies to the second)
            assert first_batch == {"BatchGetItem": 1}
            assert aws_calls.of_table("accounts") == {"BatchGetItem": 1}
            # ... and each event went where its account says
            own = {e.id for e in events + later if e.account == accounts[0]}
            assert {r.webhook_id for r in own_receiver.requests} == own
            assert {r.webhook_id for r in receiver.requests} == {e.id for e in events + later} - own
        finally:
            for account in accounts:
                api.delete(f"/v1/account/{account}")
