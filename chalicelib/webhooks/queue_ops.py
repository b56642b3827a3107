"""The SQS calls of webhook delivery: hide a message until its retry, release skipped ones,
dead-letter, and queue replays.

Retries never sleep: a failed message is hidden (ChangeMessageVisibility) until its next
attempt and stays first in its FIFO message group, so the account's later events wait
behind it while other accounts' groups flow. Dead-lettering is explicit (send to the
DLQ, then let the batch delete the original) so the delivery log and the DLQ always agree;
the queue's own redrive policy (maxReceiveCount) is only the backstop for a consumer that
fails on a message every time, and what it moves is logged by the dead-letter recorder
(chalicelib/webhooks/dead_letters.py).

Failure modes: a visibility change SQS refuses (receipt handle expired because the batch
ran longer than the visibility timeout, or moto's 12-hour limit counted from the send)
returns False; the message then comes back after the queue's default visibility and the
stored next attempt time keeps it waiting. A DLQ send that fails raises: the original is
kept and retried, never dropped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from botocore.exceptions import ClientError

from chalicelib.errors import ServiceUnavailableError
from chalicelib.events import queue
from chalicelib.events.queue import DEAD_LETTER_QUEUE
from chalicelib.observability import logger
from chalicelib.store.deliveries import StoredDelivery

RUN_ATTRIBUTE = "imaplessRun"
# Message attributes of what the consumer dead-letters itself (SQS's redrive adds none).
FAILURE_REASON_ATTRIBUTE = "failureReason"
DEAD_RUN_ATTRIBUTE = "runId"
LAST_STATUS_ATTRIBUTE = "lastStatusCode"
SQS_BATCH_LIMIT = 10


def change_visibility(receipt_handle: str, seconds: int) -> bool:
    try:
        queue.get_sqs_client().change_message_visibility(
            QueueUrl=queue.queue_url(), ReceiptHandle=receipt_handle, VisibilityTimeout=seconds)
    except ClientError as exc:
        logger.warning("visibility change refused; the message returns after the queue's default",
                       extra={"code": exc.response.get("Error", {}).get("Code"), "seconds": seconds})
        return False
    return True


def set_visibility(receipt_handles: Sequence[str], seconds: int) -> None:
    """Hide messages for ``seconds`` from now (0: visible again now), 10 per request."""
    client = queue.get_sqs_client()
    for start in range(0, len(receipt_handles), SQS_BATCH_LIMIT):
        chunk = receipt_handles[start:start + SQS_BATCH_LIMIT]
        try:
            answer = client.change_message_visibility_batch(QueueUrl=queue.queue_url(), Entries=[
                {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": seconds}
                for index, handle in enumerate(chunk)])
        except ClientError as exc:
            answer = {"Failed": [{"Code": exc.response.get("Error", {}).get("Code")}]}
        if answer.get("Failed"):
            # Not fatal: they come back after the queue's visibility timeout instead.
            logger.warning("could not change the visibility of messages",
                           extra={"failed": len(answer["Failed"]), "seconds": seconds})


def release(receipt_handles: Sequence[str]) -> None:
    """Make messages visible again now (records skipped behind a failed one of their group)."""
    set_visibility(receipt_handles, 0)


def dead_letter(body: str, *, group_id: str, deduplication_id: str, attributes: dict[str, str]) -> None:
    """Put a message body on the dead-letter queue with why it ended there (raises on failure)."""
    queue.get_sqs_client().send_message(
        QueueUrl=queue.queue_url(DEAD_LETTER_QUEUE), MessageBody=body, MessageGroupId=group_id,
        MessageDeduplicationId=deduplication_id[:128],
        MessageAttributes={name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()})


def max_receive_count() -> int | None:
    """The events queue's redrive ``maxReceiveCount`` (None: no redrive policy, or unreadable)."""
    try:
        attributes = queue.get_sqs_client().get_queue_attributes(
            QueueUrl=queue.queue_url(), AttributeNames=["RedrivePolicy"])["Attributes"]
        return int(json.loads(attributes["RedrivePolicy"])["maxReceiveCount"])
    except (ClientError, KeyError, ValueError, TypeError):
        return None  # only a detail of the log entry's text


def enqueue_replay(stored: Sequence[StoredDelivery], run_id: str) -> None:
    """Queue logged events again (same ids and bodies) for a replay run, in the given order."""
    client = queue.get_sqs_client()
    for start in range(0, len(stored), SQS_BATCH_LIMIT):
        chunk = stored[start:start + SQS_BATCH_LIMIT]
        answer = client.send_message_batch(QueueUrl=queue.queue_url(), Entries=[
            {"Id": str(index), "MessageBody": item.body, "MessageGroupId": item.account,
             # A new deduplication id: SQS would drop a re-send of the original id for 5 minutes.
             "MessageDeduplicationId": f"{item.event_id}.{run_id}",
             "MessageAttributes": {RUN_ATTRIBUTE: {"DataType": "String", "StringValue": run_id}}}
            for index, item in enumerate(chunk)])
        if answer.get("Failed"):
            codes = sorted({failure.get("Code", "?") for failure in answer["Failed"]})
            raise ServiceUnavailableError(f"the events queue refused {len(answer['Failed'])} replayed events "
                                          f"({', '.join(codes)}); the request can be repeated")
