"""The consumer of the webhook dead-letter queue: every event that ends there is in the delivery log.

Two ways lead into ``<stack>-events-dlq.fifo``::

    deliver_webhooks gives up (retries exhausted, 410)  SendMessage with failureReason, runId,
                                                        lastStatusCode; the same batch logs it failed
    SQS's redrive, after maxReceiveCount receives       the message as it was (imaplessRun kept):
      the consumer failed unexpectedly on every pass     never logged, or logged pending
      (DynamoDB or KMS unavailable, a bug), and the
      records of its account held back behind it

    record_webhook_dead_letters (Lambda on the DLQ; the local dispatcher under make run)
      not an event (poison)                 -> an error line (message id, group, size); deleted:
                                               there is nothing to log or replay
      an event of a deleted account whose   -> dropped, not logged (as deliver_webhooks does)
        id was registered again
      its log entry already settled         -> nothing: delivered (by any run), or failed or
                                               skipped by the dead-lettered run
      a replay of it under way (pending,    -> nothing: that run settles the entry itself
        another run)
      otherwise                             -> failed; reason = failureReason, or "deadLettered";
                                               attempts, last status and error kept; the body is
                                               the message body: what replay sends again

Then Lambda (or the dispatcher) deletes the record: the delivery log, listed by
``GET /v1/webhooks/deliveries`` and replayed by ``POST /v1/webhooks/replay``, is where a
dead-lettered event is handled from here on.

Idempotent, as SQS delivers at least once: each entry is written only over the item read
(:func:`~chalicelib.store.deliveries.put_delivery_if_unchanged`); when another writer got
there first (deliver_webhooks flushing the very outcome it dead-lettered, a replay being
queued) the entry is read again and decided again, so a delivered event is never marked
failed and a second pass over the same message writes nothing.

Failure modes: a read or write that fails stops the batch at that record; it and every
later record are reported failed (FIFO: later records must not overtake it) and come back
after the queue's visibility timeout. The queue has no redrive of its own: a record that
can never be written stays there (retention 14 days) and ages, which the queue's alarm
reports.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.events.model import utc_now
from chalicelib.events.queue import FIFO_BATCH_SIZE
from chalicelib.observability import logger
from chalicelib.store import accounts as account_store
from chalicelib.store import deliveries
from chalicelib.store.deliveries import ORIGINAL_RUN, DeliveryLogError, DeliveryOutcome, LoggedEvent, StoredDelivery
from chalicelib.webhooks import queue_ops
from chalicelib.webhooks.delivery import parse_event

BATCH_SIZE = FIFO_BATCH_SIZE
DEAD_LETTERED = "deadLettered"  # the reason of an event SQS's redrive moved
CONFLICT_RETRIES = 3


@dataclass(frozen=True)
class DeadLetter:
    """What one dead-lettered message says about its event."""

    event: LoggedEvent
    run_id: str
    reason: str
    status_code: int | None = None
    note: str | None = None  # the entry's lastError when no attempt left one


def _settled(previous: StoredDelivery, run_id: str) -> bool:
    if previous.status == "delivered":
        return True
    previous_run = previous.run_id or ORIGINAL_RUN
    if previous.status == "pending":
        return previous_run != run_id  # another run (a replay) is under way: it settles the entry
    return previous_run == run_id  # failed or skipped by this very run: already recorded


def dead_letter_entry(previous: StoredDelivery | None, letter: DeadLetter, now: datetime) -> StoredDelivery | None:
    """The event's log entry once its dead letter is recorded (pure), or None to leave it as it is."""
    if previous is not None and _settled(previous, letter.run_id):
        return None
    entry = deliveries.apply_outcome(previous, letter.event, DeliveryOutcome(
        status="failed", run_id=letter.run_id, attempted=False, status_code=letter.status_code,
        error=letter.note, reason=letter.reason), now)
    return dataclasses.replace(entry, last_status_code=entry.last_status_code or letter.status_code,
                               last_error=entry.last_error or letter.note)


def _attribute(record: SQSRecord, name: str) -> str | None:
    value = record.message_attributes[name]
    return value.string_value if value is not None else None


def _redrive_note(receives: int | None) -> str:
    after = f" after {receives} receives" if receives else ""
    return f"dead-lettered by the events queue{after} without a logged outcome"


def read_dead_letter(record: SQSRecord, receives: int | None) -> DeadLetter | None:
    """The dead letter a DLQ record carries, or None for a message that is not an event."""
    event = parse_event(record.body)
    if event is None:
        return None
    run_id = (_attribute(record, queue_ops.RUN_ATTRIBUTE) or _attribute(record, queue_ops.DEAD_RUN_ATTRIBUTE)
              or ORIGINAL_RUN)
    event_date = event.date if event.date.tzinfo else event.date.replace(tzinfo=UTC)
    logged = LoggedEvent(event.id, event.account, event.event, event_date, record.body)
    reason = _attribute(record, queue_ops.FAILURE_REASON_ATTRIBUTE)
    if reason is not None:  # the consumer gave up on it itself
        status = _attribute(record, queue_ops.LAST_STATUS_ATTRIBUTE)
        return DeadLetter(logged, run_id, reason, status_code=int(status) if status and status.isdigit() else None)
    return DeadLetter(logged, run_id, DEAD_LETTERED, note=_redrive_note(receives))


def _registered_since(letters: Sequence[DeadLetter]) -> dict[str, datetime]:
    """When each account of ``letters`` that exists now was registered (one BatchGetItem)."""
    wanted = sorted({letter.event.account for letter in letters if letter.event.account})
    return {account_id: stored.created_at for account_id, stored in account_store.get_accounts(wanted).items()
            } if wanted else {}


def _record(letter: DeadLetter, previous: StoredDelivery | None) -> bool:
    """Write the letter's entry over ``previous``; whether anything was written."""
    for _ in range(CONFLICT_RETRIES):
        entry = dead_letter_entry(previous, letter, utc_now())
        if entry is None:
            return False
        if deliveries.put_delivery_if_unchanged(entry, previous):
            return True
        previous = deliveries.get_delivery(letter.event.event_id)  # changed meanwhile: decide on what is there
    raise DeliveryLogError("the delivery log entry kept changing while a dead letter was recorded")


def _drop_poison(record: SQSRecord) -> None:
    # The body is not logged: it is no event, so nothing says what it may contain.
    body = record.body.encode()
    logger.error("dead-lettered message is not an event; dropped", extra={
        "messageId": record.message_id, "group": record.attributes.message_group_id, "bytes": len(body),
        "sha256": hashlib.sha256(body).hexdigest()})


def handle_dead_letter_batch(event: dict[str, Any]) -> dict[str, Any]:
    """Record one Lambda-shaped SQS batch of the DLQ in the delivery log; the partial batch response."""
    records = [SQSRecord(raw) for raw in event.get("Records", [])]
    redriven = any(record.message_attributes[queue_ops.FAILURE_REASON_ATTRIBUTE] is None for record in records)
    receives = queue_ops.max_receive_count() if redriven else None
    letters = [read_dead_letter(record, receives) for record in records]
    found = [letter for letter in letters if letter is not None]
    done = 0
    try:
        previous = deliveries.get_deliveries(letter.event.event_id for letter in found)
        since = _registered_since(found)
        for record, letter in zip(records, letters, strict=True):
            if letter is None:
                _drop_poison(record)
            elif letter.event.account in since and letter.event.event_date < since[letter.event.account]:
                logger.info("dead letter of a deleted account with the same id dropped",
                            extra={"eventId": letter.event.event_id})
            elif _record(letter, previous.get(letter.event.event_id)):
                logger.warning("dead-lettered webhook event logged as failed", extra={
                    "eventId": letter.event.event_id, "account": letter.event.account, "reason": letter.reason,
                    "runId": letter.run_id})
            done += 1
    except Exception:  # noqa: BLE001 - DynamoDB unavailable or a bug: this record and the rest come back later
        logger.exception("dead letter not recorded; retried after the queue's visibility timeout",
                         extra={"records": len(records) - done})
    return {"batchItemFailures": [{"itemIdentifier": record.message_id} for record in records[done:]]}


def record_webhook_dead_letters(event: Any) -> dict[str, Any]:
    """The Chalice ``on_sqs_message`` handler (``event`` is Chalice's SQSEvent)."""
    return handle_dead_letter_batch(event.to_dict())
