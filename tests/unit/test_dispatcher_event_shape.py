"""The SQS event the local dispatcher builds has the shape Lambda delivers.

Reference: the record layout of Lambda's SQS event source (AWS Lambda developer guide,
"Using Lambda with Amazon SQS"), which Chalice's SQSEvent and Powertools' SQSRecord parse.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from chalice.app import SQSEvent

from chalicelib.webhooks.delivery import QueuedMessage
from local.dispatcher import LocalLambdaContext, lambda_sqs_event

ARN = "arn:aws:sqs:us-east-1:123456789012:imapless-events.fifo"
RECEIVED = {  # a ReceiveMessage answer's message, as boto3 returns it
    "MessageId": "5fea7756-0ea4-451a-a703-a558b933e274",
    "ReceiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
    "MD5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
    "Body": '{"id":"evt_1","account":"alice","event":"messageNew","date":"2026-03-01T12:00:00Z","data":{}}',
    "Attributes": {"ApproximateReceiveCount": "3", "SentTimestamp": "1772366400000", "SenderId": "AIDAIENQZJOLO",
                   "ApproximateFirstReceiveTimestamp": "1772366400100", "SequenceNumber": "18849496460467696128",
                   "MessageGroupId": "alice", "MessageDeduplicationId": "evt_1"},
    "MessageAttributes": {"imaplessRun": {"StringValue": "rpl_0123456789abcdef", "DataType": "String"}},
}


def test_records_carry_lambdas_field_names():
    event = lambda_sqs_event([RECEIVED], ARN, "us-east-1")
    record = event["Records"][0]
    assert set(record) == {"messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody",
                           "eventSource", "eventSourceARN", "awsRegion"}
    assert record["eventSource"] == "aws:sqs"
    assert record["messageAttributes"]["imaplessRun"] == {
        "stringValue": "rpl_0123456789abcdef", "stringListValues": [], "binaryListValues": [], "dataType": "String"}


def test_chalice_and_powertools_read_what_the_consumer_needs():
    event = lambda_sqs_event([RECEIVED, {**RECEIVED, "MessageId": "second", "MessageAttributes": {}}], ARN,
                             "us-east-1")
    chalice_records = list(SQSEvent(event, LocalLambdaContext()))
    assert [r.receipt_handle for r in chalice_records] == [RECEIVED["ReceiptHandle"]] * 2

    message = QueuedMessage.from_record(SQSRecord(event["Records"][0]))
    assert (message.message_id, message.group_id, message.deduplication_id, message.receive_count) == \
        (RECEIVED["MessageId"], "alice", "evt_1", 3)
    assert message.queued_at == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert message.run_id == "rpl_0123456789abcdef"
    assert QueuedMessage.from_record(SQSRecord(event["Records"][1])).run_id == "original"


def test_the_local_context_counts_down_like_lambdas():
    context = LocalLambdaContext(timeout_seconds=30)
    assert 29_000 < context.get_remaining_time_in_millis() <= 30_000
    assert context.function_name == "deliver_webhooks"


def test_the_dispatcher_serves_every_sqs_handler_the_app_registers():
    import app
    from local.dispatcher import sqs_subscriptions

    subscriptions = {s.function_name: s for s in sqs_subscriptions(app)}
    webhooks = subscriptions["deliver_webhooks"]
    assert (webhooks.queue_name, webhooks.batch_size) == ("imapless-events.fifo", 10)
    assert webhooks.handler is app.deliver_webhooks
    recorder = subscriptions["record_webhook_dead_letters"]
    assert (recorder.queue_name, recorder.batch_size) == ("imapless-events-dlq.fifo", 10)
    assert recorder.handler is app.record_webhook_dead_letters
