"""The SQS consumer of the events queue: a Lambda on AWS, the same function locally.

``app.py`` registers :func:`deliver_webhooks` with ``@app.on_sqs_message`` (Lambda), and
``local/dispatcher.py`` calls that registered handler with SQS events it builds from
its own ReceiveMessage calls, so both run exactly this code.

One invocation = one batch of at most 10 records of the FIFO queue, possibly from several
message groups (accounts). Each group is worked through in order on its own thread, all
groups at once, so one account's slow receiver delays nobody else::

    batch  A1 A2 B1 A3 B2 C1           groups, in parallel (one thread each):
                                         A: A1 ok   A2 retry(hidden 5 s)   A3 skipped
                                         B: B1 ok   B2 ok
                                         C: C1 ok   (C1 waited for nobody)
      -> batchItemFailures = [A2, A3]   (A1, B1, B2, C1 are deleted by Lambda)
      -> A3 released (visibility 0) now; the group stays locked by A2 until A2 is back,
         then A2 is received first, A3 after it: order kept.

A group stops at its first record that does not finish (the rest of the group is reported
failed and released, as above), and starts no new attempt once it has worked for one
attempt budget (``IMAPLESS_WEBHOOK_TIMEOUT_SECONDS``): its remaining records are handed
back unattempted and come first in the next batch. So a batch takes at most about two
attempt budgets whatever its receivers do, and an account whose receiver answers just
inside the budget does not push the batch past the consumer's timeout (which would
redeliver everything, late and twice).

The webhook configuration (settings, secrets, the batch's accounts' overrides) is read once
per batch and never kept for the next one (chalicelib/webhooks/targets.py), so a settings
change applies to every event received after the change returned.

The AWS work of a batch is batched too: the delivery-log items of all its event ids are
read with one consistent BatchGetItem before the first record, and every outcome is
written with one BatchWriteItem after the last (chalicelib/webhooks/batch_log.py), before
the handler returns and so before Lambda (or the dispatcher) deletes anything. Visibility
changes and dead-letter sends stay per record, in the loop: they are rare, and each must
happen before its record can be deleted.

Records a delivery pass deferred already have their visibility set (the retry time);
records skipped behind them (or handed back at the group budget) are released here,
otherwise they would keep the whole group locked until the queue's visibility timeout. A record whose handler
failed unexpectedly (a DynamoDB error, a bug) comes back after ``UNEXPECTED_RETRY_SECONDS``;
the queue's redrive policy ends a record that fails that way every time (after 50
receives, with the records of its group held behind it), and the dead-letter recorder
(chalicelib/webhooks/dead_letters.py) logs each as failed, replayable.

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

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.events.model import Event
from chalicelib.events.queue import FIFO_BATCH_SIZE
from chalicelib.observability import logger
from chalicelib.settings import get_settings
from chalicelib.store.deliveries import DeliveryLogError
from chalicelib.webhooks import queue_ops, targets
from chalicelib.webhooks.batch_log import BatchLog
from chalicelib.webhooks.delivery import DeliveryDeferredError, QueuedMessage, parse_event, process_message

UNEXPECTED_RETRY_SECONDS = 30
BATCH_SIZE = FIFO_BATCH_SIZE


def _fail_records(records: Iterable[dict[str, Any]], already_hidden: set[str]) -> list[dict[str, str]]:
    """Report ``records`` as failed, hiding those not hidden yet for UNEXPECTED_RETRY_SECONDS."""
    records = list(records)
    queue_ops.set_visibility([record["receiptHandle"] for record in records
                              if record["messageId"] not in already_hidden], UNEXPECTED_RETRY_SECONDS)
    return [{"itemIdentifier": record["messageId"]} for record in records]


@dataclass
class _GroupOutcome:
    failed: list[str] = field(default_factory=list)  # message ids reported back to SQS
    hidden: set[str] = field(default_factory=set)  # of those, the ones whose visibility is already set


def _message_groups(prepared: dict[str, tuple[QueuedMessage, Event | None]]) -> list[list[QueuedMessage]]:
    """The batch's messages by message group, each group in queue order."""
    groups: dict[str, list[QueuedMessage]] = {}
    for message, _ in prepared.values():
        groups.setdefault(message.group_id or message.message_id, []).append(message)
    return list(groups.values())


def _run_group(group: list[QueuedMessage], prepared: dict[str, tuple[QueuedMessage, Event | None]], log: BatchLog,
               reader: targets.TargetReader, budget_seconds: float) -> _GroupOutcome:
    """Process one group's records in order; stop at the first that does not finish, or once
    the group has used its budget (the rest is handed back unattempted)."""
    outcome = _GroupOutcome()
    started = time.monotonic()
    for index, message in enumerate(group):
        if index and time.monotonic() - started >= budget_seconds:
            outcome.failed += [later.message_id for later in group[index:]]
            return outcome
        try:
            process_message(message, prepared[message.message_id][1], log, reader)
            continue
        except DeliveryDeferredError:
            outcome.hidden.add(message.message_id)  # until its next attempt
        except Exception:  # noqa: BLE001 - a DynamoDB error or a bug retries this record, not the batch
            logger.exception("webhook record failed; retrying soon", extra={"messageId": message.message_id})
            if _hide(message, UNEXPECTED_RETRY_SECONDS):
                outcome.hidden.add(message.message_id)
        outcome.failed += [later.message_id for later in group[index:]]
        return outcome
    return outcome


def _hide(message: QueuedMessage, seconds: int) -> bool:
    try:
        queue_ops.change_visibility(message.receipt_handle, seconds)
    except Exception:  # noqa: BLE001 - not hidden: it is released with the rest and comes back at once
        logger.exception("could not hide a failed record", extra={"messageId": message.message_id})
        return False
    return True


def _run_groups(groups: list[list[QueuedMessage]], prepared: dict[str, tuple[QueuedMessage, Event | None]],
                log: BatchLog, reader: targets.TargetReader) -> _GroupOutcome:
    budget = get_settings().webhook_timeout_seconds
    if len(groups) == 1:
        return _run_group(groups[0], prepared, log, reader, budget)
    with ThreadPoolExecutor(max_workers=min(len(groups), BATCH_SIZE), thread_name_prefix="deliver-group") as pool:
        outcomes = list(pool.map(lambda group: _run_group(group, prepared, log, reader, budget), groups))
    merged = _GroupOutcome()
    for outcome in outcomes:
        merged.failed += outcome.failed
        merged.hidden |= outcome.hidden
    return merged


def handle_sqs_event(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Process one Lambda-shaped SQS batch; returns the partial batch response."""
    records = event.get("Records", [])
    prepared: dict[str, tuple[QueuedMessage, Event | None]] = {}
    for raw in records:
        message = QueuedMessage.from_record(SQSRecord(raw))
        prepared[message.message_id] = (message, parse_event(message.body))
    events = [parsed for _, parsed in prepared.values() if parsed is not None]
    # Read for this batch only, never cached across batches: a settings change applies to
    # every event received after it returned (see targets.py for why not a version stamp).
    reader = targets.TargetReader()
    reader.prefetch_accounts(parsed.account for parsed in events)
    try:
        log = BatchLog.load(parsed.id for parsed in events)
    except DeliveryLogError:
        logger.exception("delivery log unreadable; the batch is retried soon")
        return {"batchItemFailures": _fail_records(records, set())}

    outcome = _run_groups(_message_groups(prepared), prepared, log, reader)
    failures = [{"itemIdentifier": message_id} for message_id in outcome.failed]
    failed, visibility_set = set(outcome.failed), set(outcome.hidden)
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
    return {"batchItemFailures": failures}


def deliver_webhooks(event: Any) -> dict[str, Any]:
    """The Chalice ``on_sqs_message`` handler (``event`` is Chalice's SQSEvent)."""
    return handle_sqs_event(event.to_dict(), event.context)
