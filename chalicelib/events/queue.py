"""The SQS events queue (FIFO: one message group per account keeps per-account order).

Clients are created lazily on first use (never at import) so moto and tests can point
``AWS_ENDPOINT_URL`` at an emulator before anything talks to AWS.
"""

from __future__ import annotations

import functools

from chalicelib import aws_clients
from chalicelib.settings import get_settings

EVENTS_QUEUE = "events.fifo"
DEAD_LETTER_QUEUE = "events-dlq.fifo"  # where SQS's redrive moves events the consumer gave up on
FIFO_BATCH_SIZE = 10  # the most a Lambda event source hands a function from a FIFO queue


def get_sqs_client():
    return aws_clients.client("sqs")


@functools.lru_cache(maxsize=8)
def queue_url(short_name: str = EVENTS_QUEUE) -> str:
    return get_sqs_client().get_queue_url(QueueName=get_settings().queue_name(short_name))["QueueUrl"]


def ping() -> None:
    """Raise if the events queue cannot be reached (health check)."""
    get_sqs_client().get_queue_attributes(QueueUrl=queue_url(), AttributeNames=["QueueArn"])


def reset_clients() -> None:
    """Forget cached clients and URLs (tests switch emulators between runs)."""
    aws_clients.reset()
    queue_url.cache_clear()
