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

Records a delivery pass deferred already have their visibility set (the retry time);
records the processor skipped behind them are released here, otherwise they would keep
the whole group locked until the queue's visibility timeout. A record whose handler
failed unexpectedly (a DynamoDB error, a bug) comes back after ``UNEXPECTED_RETRY_SECONDS``;
the queue's redrive policy ends a record that fails that way every time.

The whole batch is never failed (``raise_on_entire_batch_failure`` off): failures are
reported per record. This needs ``FunctionResponseTypes: [ReportBatchItemFailures]`` on the
event source mapping, which ``chalice package`` does not emit (see docs/webhooks.md).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.observability import logger
from chalicelib.webhooks import queue_ops
from chalicelib.webhooks.delivery import DeliveryDeferredError, QueuedMessage, process_message

UNEXPECTED_RETRY_SECONDS = 30
BATCH_SIZE = 10  # the FIFO maximum for Lambda event sources


def handle_sqs_event(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Process one Lambda-shaped SQS batch; returns the partial batch response."""
    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    processor.raise_on_entire_batch_failure = False
    visibility_set: set[str] = set()

    def handle_record(record: SQSRecord) -> str:
        message = QueuedMessage.from_record(record)
        try:
            return process_message(message)
        except DeliveryDeferredError:
            visibility_set.add(message.message_id)
            raise
        except Exception:
            logger.exception("webhook record failed; retrying soon", extra={"messageId": message.message_id})
            queue_ops.change_visibility(message.receipt_handle, UNEXPECTED_RETRY_SECONDS)
            visibility_set.add(message.message_id)
            raise

    response = process_partial_response(event=event, record_handler=handle_record, processor=processor,
                                        context=context)
    failed = {failure["itemIdentifier"] for failure in response.get("batchItemFailures", [])}
    skipped = [record["receiptHandle"] for record in event.get("Records", [])
               if record["messageId"] in failed and record["messageId"] not in visibility_set]
    if skipped:
        queue_ops.release(skipped)
    return dict(response)


def deliver_webhooks(event: Any) -> dict[str, Any]:
    """The Chalice ``on_sqs_message`` handler (``event`` is Chalice's SQSEvent)."""
    return handle_sqs_event(event.to_dict(), event.context)
