"""Publishing events: the ``EventSink`` interface, its SQS implementation and a list for tests.

The watcher enqueues a batch of events *before* it moves its checkpoint; ``publish``
returns only when SQS accepted every event of the batch, and raises otherwise (the
caller keeps the old checkpoint and retries later: same ids, so nothing is duplicated
downstream).

SQS FIFO specifics: ``MessageGroupId`` = account (per-account order),
``MessageDeduplicationId`` = event id (SQS drops a re-send within 5 minutes; consumers
dedupe beyond that on the same id).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from chalicelib.chunking import bounded_chunks
from chalicelib.events import queue
from chalicelib.events.model import Event
from chalicelib.observability import count_events_emitted

SQS_BATCH_LIMIT = 10
# One message's limit on queues that keep the classic one; an event with message text can
# be ~230 KB alone (chalicelib.services.notify_content keeps it under this).
SQS_MESSAGE_BYTES = 256 * 1024
# SQS refuses a batch whose bodies add up to more than the message limit.
SQS_BATCH_BYTES = SQS_MESSAGE_BYTES


class EventSink(Protocol):
    def publish(self, events: Sequence[Event]) -> None:
        """Durably hand over every event, in order, or raise."""


class PublishError(Exception):
    """Some events of a batch were not accepted; none of the batch may be checkpointed."""


class SqsEventSink:
    def __init__(self, client=None, queue_url: str | None = None) -> None:
        self._client = client
        self._queue_url = queue_url

    def publish(self, events: Sequence[Event]) -> None:
        client = self._client or queue.get_sqs_client()
        url = self._queue_url or queue.queue_url()
        for chunk in _batches([(event, event.to_json()) for event in events]):
            answer = client.send_message_batch(QueueUrl=url, Entries=[
                {"Id": str(index), "MessageBody": body, "MessageGroupId": event.account,
                 "MessageDeduplicationId": event.id}
                for index, (event, body) in enumerate(chunk)])
            failed = answer.get("Failed") or []
            if failed:
                reasons = sorted({f.get("Code", "?") for f in failed})
                raise PublishError(f"{len(failed)} of {len(chunk)} events not accepted by SQS: {reasons}")
            count_events_emitted(event.event for event, _ in chunk)


def _batches(bodies: list[tuple[Event, str]]) -> Iterator[list[tuple[Event, str]]]:
    """Consecutive runs of at most ``SQS_BATCH_LIMIT`` events and ``SQS_BATCH_BYTES`` of bodies."""
    return bounded_chunks(bodies, max_count=SQS_BATCH_LIMIT, max_bytes=SQS_BATCH_BYTES,
                          size_of=lambda pair: len(pair[1].encode()))


class ListEventSink:
    """Collects events in memory (tests, benchmarks)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, events: Sequence[Event]) -> None:
        self.events.extend(events)
