"""The SQS consumer of the events queue: a Lambda on AWS, the same function locally.

``app.py`` registers :func:`deliver_webhooks` with ``@app.on_sqs_message`` (Lambda), and
``workers/dispatcher.py`` calls that registered handler with SQS events it builds from
its own ReceiveMessage calls, so both run exactly this code.

One invocation = one batch of at most 10 records of the FIFO queue, possibly from several
message groups (accounts)::

    Powertools SqsFifoPartialProcessor(skip_group_on_error=True)
      A1 ok   A2 retry(hidden 5 s)   A3 skipped   B1 ok   B2 ok
      -> batchItemFailures = [A2, A3]             (A1, B1, B2 are deleted by Lambda)
      -> A3 released (visibility 0) now; the group stays locked by A2 until A2 is back,
         then A2 is received first, A3 after it: order kept, B never waited for A.

The AWS work of a batch is batched too: the delivery-log items of all its event ids are
read with one consistent BatchGetItem before the first record, and every outcome is
written with one BatchWriteItem after the last (chalicelib/webhooks/batch_log.py), before
the handler returns and so before Lambda (or the dispatcher) deletes anything. Visibility
changes and dead-letter sends stay per record, in the loop: they are rare, and each must
happen before its record can be deleted.

Records a delivery pass deferred already have their visibility set (the retry time);
records the processor skipped behind them are released here, otherwise they would keep
the whole group locked until the queue's visibility timeout. A record whose handler
failed unexpectedly (a DynamoDB error, a bug) comes back after ``UNEXPECTED_RETRY_SECONDS``;
the queue's redrive policy ends a record that fails that way every time.

When the log cannot be read or written (DynamoDB unavailable, throttled past pynamodb's
retries), every record whose outcome is not in the log is reported as failed and hidden
for ``UNEXPECTED_RETRY_SECONDS``, so nothing is deleted without its log entry: a record
that was POSTed is POSTed again on its next pass (same ``webhook-id``), a dead-lettered
one is sent to the DLQ again with the same deduplication id (dropped by SQS within 5
minutes). Records with nothing to log (poison, duplicates) are deleted as usual. The
handler does not raise for this: a raised batch would come back only after the queue's
900 s visibility timeout, all of it, including what other accounts had finished.

The whole batch is never failed (``raise_on_entire_batch_failure`` off): failures are
reported per record. This needs ``FunctionResponseTypes: [ReportBatchItemFailures]`` on the
event source mapping, which ``chalice package`` does not emit (see docs/webhooks.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.events.model import Event
from chalicelib.observability import logger
from chalicelib.store.deliveries import DeliveryLogError
from chalicelib.webhooks import queue_ops, targets
from chalicelib.webhooks.batch_log import BatchLog
from chalicelib.webhooks.delivery import DeliveryDeferredError, QueuedMessage, parse_event, process_message

UNEXPECTED_RETRY_SECONDS = 30
BATCH_SIZE = 10  # the FIFO maximum for Lambda event sources


def _fail_records(records: Iterable[dict[str, Any]], already_hidden: set[str]) -> list[dict[str, str]]:
    """Report ``records`` as failed, hiding those not hidden yet for UNEXPECTED_RETRY_SECONDS."""
    records = list(records)
    queue_ops.set_visibility([record["receiptHandle"] for record in records
                              if record["messageId"] not in already_hidden], UNEXPECTED_RETRY_SECONDS)
    return [{"itemIdentifier": record["messageId"]} for record in records]


def handle_sqs_event(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Process one Lambda-shaped SQS batch; returns the partial batch response."""
    records = event.get("Records", [])
    prepared: dict[str, tuple[QueuedMessage, Event | None]] = {}
    for raw in records:
        message = QueuedMessage.from_record(SQSRecord(raw))
        prepared[message.message_id] = (message, parse_event(message.body))
    events = [parsed for _, parsed in prepared.values() if parsed is not None]
    targets.prefetch_accounts(parsed.account for parsed in events)
    try:
        log = BatchLog.load(parsed.id for parsed in events)
    except DeliveryLogError:
        logger.exception("delivery log unreadable; the batch is retried soon")
        return {"batchItemFailures": _fail_records(records, set())}

    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    processor.raise_on_entire_batch_failure = False
    visibility_set: set[str] = set()

    def handle_record(record: SQSRecord) -> str:
        message, parsed = prepared[record.message_id]
        try:
            return process_message(message, parsed, log)
        except DeliveryDeferredError:
            visibility_set.add(message.message_id)
            raise
        except Exception:
            logger.exception("webhook record failed; retrying soon", extra={"messageId": message.message_id})
            queue_ops.change_visibility(message.receipt_handle, UNEXPECTED_RETRY_SECONDS)
            visibility_set.add(message.message_id)
            raise

    response: dict[str, Any] = dict(process_partial_response(event=event, record_handler=handle_record,
                                                             processor=processor, context=context))
    failures: list[dict[str, str]] = list(response.get("batchItemFailures", []))
    failed = {failure["itemIdentifier"] for failure in failures}
    try:
        log.flush()
    except DeliveryLogError:
        unwritten = set(log.unwritten_message_ids) - failed
        logger.exception("delivery log not written; those records are retried soon",
                         extra={"records": len(unwritten)})
        failures += _fail_records((r for r in records if r["messageId"] in unwritten), visibility_set)
        visibility_set |= unwritten
        failed |= unwritten
    skipped = [record["receiptHandle"] for record in records
               if record["messageId"] in failed and record["messageId"] not in visibility_set]
    if skipped:
        queue_ops.release(skipped)
    response["batchItemFailures"] = failures
    return response


def deliver_webhooks(event: Any) -> dict[str, Any]:
    """The Chalice ``on_sqs_message`` handler (``event`` is Chalice's SQSEvent)."""
    return handle_sqs_event(event.to_dict(), event.context)
