"""The local SQS dispatcher (``python -m local.dispatcher``): Lambda's SQS pollers, locally.

On AWS, an event source mapping receives from each queue that ``app.py`` subscribes a
handler to with ``@app.on_sqs_message`` (the events queue -> ``deliver_webhooks``, its
dead-letter queue -> ``record_webhook_dead_letters``, the outbox -> ``deliver_outbox``)
and invokes that Lambda with batches. ``chalice local``
runs no SQS handlers, so under ``make run`` this process plays every such mapping: it reads
the subscriptions from the Chalice app, receives from the same queues, builds the event
Lambda would, calls the very handler ``app.py`` registers, and deletes what the handler did
not report as failed::

    python -m local.dispatcher
    +-------------------------------------------------------------------------+
    | main thread      waits for SIGTERM/SIGINT, then sets `stop`             |
    | per subscription (queue + handler + batch size):                        |
    |   receiver thread  ReceiveMessage (batch size, all attributes)          |
    |                      -> a free worker, at most N batches in flight      |
    |   workers x N      Lambda-shaped SQS event + a context                  |
    |                      -> app.<handler>(event, context)                   |
    |                      -> DeleteMessageBatch(records not in batchItemFailures)|
    +-------------------------------------------------------------------------+

N (``IMAPLESS_DISPATCHER_CONCURRENCY``) plays Lambda's concurrent invocations: FIFO message
groups keep one account's events in one batch at a time, so order per account holds.
Retries need nothing here: handlers hide a failed message until its next attempt (or let
it come back after the visibility timeout) and SQS hands it out again then.

Stop: SIGTERM/SIGINT ends the receivers' long polls (at most ``RECEIVE_WAIT_SECONDS``) and
lets the workers finish the batches they hold. A process that dies mid-batch loses
nothing: its messages reappear after the queue's visibility timeout. As on Lambda, if a
handler raises, nothing of that batch is deleted.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from aws_lambda_powertools import Logger
from chalice.app import SQSEventConfig

from chalicelib.events import queue
from chalicelib.settings import get_settings
from workers import wait_for_stop_signal

SERVICE_NAME = "imapless-dispatcher"
FUNCTION_NAME = "deliver_webhooks"  # the default subscription (tests use it directly)
RECEIVE_WAIT_SECONDS = 1  # long-poll length: bounds how late a retry is picked up and how long a stop waits
BATCH_SIZE = 10  # Lambda's FIFO maximum
LAMBDA_TIMEOUT_SECONDS = 150  # .chalice/config.json gives the Lambda the same budget
CHALICE_CONFIG = Path(__file__).resolve().parents[1] / ".chalice" / "config.json"
CHALICE_DEFAULT_TIMEOUT_SECONDS = 60  # what Chalice gives a function the config names no timeout for
ERROR_BACKOFF_SECONDS = 1.0
IDLE_POLL_SECONDS = 0.05

Handler = Callable[[dict[str, Any], Any], Any]


@functools.cache
def function_timeout_seconds(function_name: str) -> float:
    """The Lambda timeout ``function_name`` gets on AWS (``.chalice/config.json``), so a local
    handler that plans by its remaining time (the outbox consumer) plans as it would there."""
    config = json.loads(CHALICE_CONFIG.read_text())
    function = (config.get("lambda_functions") or {}).get(function_name) or {}
    return float(function.get("lambda_timeout") or config.get("lambda_timeout") or CHALICE_DEFAULT_TIMEOUT_SECONDS)


class LocalLambdaContext:
    """The parts of Lambda's context object that the handler and Powertools read."""

    def __init__(self, function_name: str = FUNCTION_NAME, timeout_seconds: float = LAMBDA_TIMEOUT_SECONDS) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 128
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    shaped: dict[str, Any] = {"dataType": value["DataType"], "stringListValues": [], "binaryListValues": []}
    if "StringValue" in value:
        shaped["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        shaped["binaryValue"] = value["BinaryValue"]
    return shaped


def lambda_sqs_event(messages: Sequence[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source delivers for ``messages`` (from ReceiveMessage)."""
    return {"Records": [{
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {name: _message_attribute(value)
                              for name, value in (message.get("MessageAttributes") or {}).items()},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    } for message in messages]}


class QueuePoller:
    """Receives batches from one queue and hands them to a Lambda handler, Lambda-style."""

    def __init__(self, handler: Handler, client: Any = None, queue_url: str | None = None,
                 wait_seconds: int = RECEIVE_WAIT_SECONDS, batch_size: int = BATCH_SIZE,
                 function_name: str = FUNCTION_NAME) -> None:
        self._handler = handler
        self._client = client or queue.get_sqs_client()
        self._queue_url = queue_url or queue.queue_url()
        self._queue_arn = self._client.get_queue_attributes(
            QueueUrl=self._queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self._region = get_settings().aws_region
        self._wait_seconds = wait_seconds
        self._batch_size = batch_size
        self.function_name = function_name

    def receive(self, wait_seconds: int | None = None) -> list[dict[str, Any]]:
        answer = self._client.receive_message(
            QueueUrl=self._queue_url, MaxNumberOfMessages=self._batch_size,
            WaitTimeSeconds=self._wait_seconds if wait_seconds is None else wait_seconds,
            MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"])
        return answer.get("Messages") or []

    def handle(self, messages: Sequence[dict[str, Any]]) -> None:
        """Invoke the handler with one batch and delete what it did not report as failed."""
        response = self._handler(lambda_sqs_event(messages, self._queue_arn, self._region),
                                 LocalLambdaContext(self.function_name,
                                                    function_timeout_seconds(self.function_name)))
        failed = {failure["itemIdentifier"] for failure in (response or {}).get("batchItemFailures", [])}
        done = [message for message in messages if message["MessageId"] not in failed]
        if done:
            self._client.delete_message_batch(QueueUrl=self._queue_url, Entries=[
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]} for index, message in enumerate(done)])

    def poll_once(self) -> int:
        """One receive and one handler call; returns how many messages were received."""
        messages = self.receive()
        if messages:
            self.handle(messages)
        return len(messages)


class Dispatcher:
    """One receiver thread feeding up to ``concurrency`` batches to worker threads.

    Why one receiver: moto's FIFO receive is not atomic. A long poll notes which message
    groups are in flight when it starts, not when it wakes, so concurrent receives (or a
    long poll running while our own batches finish) can hand one account's events to two
    workers at once. So receives never overlap, and a receive *waits* only when no batch of
    ours is in flight; while batches are in flight it asks without waiting and retries as
    soon as one finishes. Real SQS needs none of this, but this process only runs on moto.
    """

    def __init__(self, poller: QueuePoller, concurrency: int, logger: Logger) -> None:
        self._poller = poller
        self._logger = logger
        self._concurrency = concurrency
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="deliver")
        self._changed = threading.Condition()
        self._in_flight = 0

    def _handle(self, messages: list[dict[str, Any]]) -> None:
        try:
            self._poller.handle(messages)
        except Exception:
            # As on Lambda: nothing of the batch is deleted; it returns after the visibility timeout.
            self._logger.exception("webhook batch failed")
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._changed:
                while self._in_flight >= self._concurrency and not stop.is_set():
                    self._changed.wait(IDLE_POLL_SECONDS)
                busy = self._in_flight > 0
            try:
                messages = self._poller.receive(wait_seconds=0 if busy else None)
            except Exception:
                self._logger.exception("receiving from the events queue failed; retrying")
                stop.wait(ERROR_BACKOFF_SECONDS)
                continue
            if not messages:
                if busy:
                    with self._changed:
                        self._changed.wait(IDLE_POLL_SECONDS)  # until a batch finishes, briefly
                continue
            with self._changed:
                self._in_flight += 1
            self._pool.submit(self._handle, messages)
        self._pool.shutdown(wait=True)


@dataclass(frozen=True)
class SqsSubscription:
    """One ``@app.on_sqs_message`` of the Chalice app: what Lambda would poll, and for whom."""

    function_name: str
    queue_name: str
    batch_size: int
    handler: Handler


def sqs_subscriptions(app_module: ModuleType) -> list[SqsSubscription]:
    """Every SQS handler the Chalice app in ``app_module`` registers, as Chalice records them."""
    subscriptions = []
    for source in app_module.app.event_sources:
        if isinstance(source, SQSEventConfig):
            queue_name = source.queue or str(source.queue_arn).rsplit(":", 1)[-1]
            subscriptions.append(SqsSubscription(function_name=source.name, queue_name=queue_name,
                                                 batch_size=source.batch_size,
                                                 handler=getattr(app_module, source.name)))
    return subscriptions


def main() -> int:
    settings = get_settings()
    logger = Logger(service=SERVICE_NAME, level=settings.log_level)
    import app  # imported late: the environment points at the emulator first

    stop = threading.Event()
    receivers = []
    client = queue.get_sqs_client()
    for subscription in sqs_subscriptions(app):
        poller = QueuePoller(subscription.handler, client=client,
                             queue_url=client.get_queue_url(QueueName=subscription.queue_name)["QueueUrl"],
                             batch_size=subscription.batch_size, function_name=subscription.function_name)
        dispatcher = Dispatcher(poller, settings.dispatcher_concurrency, logger)
        receivers.append(threading.Thread(target=dispatcher.run, args=(stop,),
                                          name=f"receive-{subscription.function_name}"))
    for receiver in receivers:
        receiver.start()
    logger.info("dispatcher started", extra={"pid": os.getpid(), "concurrency": settings.dispatcher_concurrency,
                                             "handlers": [r.name.removeprefix("receive-") for r in receivers]})
    received = wait_for_stop_signal()
    stop.set()
    for receiver in receivers:
        receiver.join()
    logger.info("dispatcher stopped", extra={"pid": os.getpid(), "signal": received.name})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
