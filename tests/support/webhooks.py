"""Pytest plugin: a harness for webhook delivery tests against the session's moto.

The ``webhooks`` fixture gives each test an empty events queue and dead-letter queue,
a fast retry schedule (five 1 s steps) and a short attempt timeout, no settings cache, and
helpers to configure settings through the API, publish events the way the watcher does
(:class:`SqsEventSink`), and run the Lambda handler on what the queue hands out
(:class:`local.dispatcher.QueuePoller`, which builds Lambda's SQS event), and the dead-letter
recorder on what the dead-letter queue hands out. Whatever a test
configured is switched off and drained afterwards, so no delivery leaks into the next test.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# Five 1 s retry slots: short tests, and room for a slow machine to miss a slot or two.
FAST_SCHEDULE = "1,1,1,1,1"
ATTEMPT_TIMEOUT_SECONDS = "1.5"
DRAIN_DEADLINE_SECONDS = 15.0


@dataclass
class WebhookHarness:
    api: Any
    sqs: Any
    queue_url: str
    dlq_url: str

    # -- configuration ------------------------------------------------------------------------

    def configure(self, url: str, *, events: list[str] | None = None, enabled: bool = True,
                  secret: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"webhooks": url, "webhooksEnabled": enabled, "webhookEvents": events or ["*"]}
        if secret is not None:
            body["webhookSecret"] = secret
        response = self.api.post("/v1/settings", body)
        assert response.status == 200, response.body
        return response.json

    def configure_with_secret(self, url: str, **kwargs: Any) -> str:
        """Configure and return a known secret (set explicitly, so it works whatever ran before)."""
        from chalicelib.webhooks.signing import generate_secret

        secret = generate_secret()
        self.configure(url, secret=secret, **kwargs)
        return secret

    # -- events ---------------------------------------------------------------------------------

    def event(self, account: str, event_type: str = "messageNew", **data: Any) -> Any:
        from chalicelib.events.model import Event, event_id

        return Event(id=event_id(account, event_type, secrets.token_hex(8)), account=account, event=event_type,
                     path="INBOX", data=data)

    def publish(self, *events: Any) -> None:
        from chalicelib.events.publisher import SqsEventSink

        SqsEventSink().publish(list(events))

    # -- consuming ------------------------------------------------------------------------------

    def poller(self, wait_seconds: int = 1) -> Any:
        from app import deliver_webhooks
        from local.dispatcher import QueuePoller

        return QueuePoller(deliver_webhooks, wait_seconds=wait_seconds)

    def run_until(self, condition: Callable[[], bool], timeout: float = 15.0) -> None:
        """Run the consumer on whatever the queue hands out until ``condition()`` holds."""
        poller = self.poller()
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            poller.poll_once()

    def run_for(self, seconds: float) -> None:
        """Keep consuming for a while (to show that nothing more happens)."""
        poller = self.poller()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            poller.poll_once()

    def fail_until_dead_lettered(self, expected: int, timeout: float = 30.0) -> None:
        """What SQS sees of a consumer that fails on every pass (DynamoDB or KMS down): receives
        that never delete, until the queue's redrive policy has moved ``expected`` messages to
        the dead-letter queue. Visibility 0 makes each receive count at once."""
        deadline = time.monotonic() + timeout
        while self.queue_counts(self.dlq_url)[0] < expected:
            if time.monotonic() > deadline:
                raise AssertionError(f"fewer than {expected} messages dead-lettered within {timeout} s")
            self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                                     WaitTimeSeconds=0)

    def dead_letter_poller(self) -> Any:
        from app import record_webhook_dead_letters
        from local.dispatcher import QueuePoller

        return QueuePoller(record_webhook_dead_letters, queue_url=self.dlq_url, wait_seconds=0,
                           function_name="record_webhook_dead_letters")

    def record_dead_letters(self) -> None:
        """Run the dead-letter recorder on what the dead-letter queue hands out until it hands out nothing."""
        poller = self.dead_letter_poller()
        while poller.poll_once():
            pass

    def queue_counts(self, url: str | None = None) -> tuple[int, int]:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def take_dead_letters(self) -> list[dict[str, Any]]:
        """Every message now in the dead-letter queue, in order (removed from it)."""
        taken: list[dict[str, Any]] = []
        while True:
            answer = self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                              MessageAttributeNames=["All"])
            messages = answer.get("Messages") or []
            if not messages:
                return taken
            taken.extend(messages)
            self.sqs.delete_message_batch(QueueUrl=self.dlq_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])

    def drain(self) -> None:
        """Delete everything from both queues, waiting for hidden (retrying) messages to return."""
        deadline = time.monotonic() + DRAIN_DEADLINE_SECONDS
        for url in (self.queue_url, self.dlq_url):
            while True:
                answer = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
                messages = answer.get("Messages") or []
                if messages:
                    self.sqs.delete_message_batch(QueueUrl=url, Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
                    continue
                if self.queue_counts(url) == (0, 0) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)

    def delivery(self, event_id: str) -> Any:
        from chalicelib.store.deliveries import get_delivery

        return get_delivery(event_id)


def forget_service_secret() -> None:
    from chalicelib.store import settings as settings_store
    from chalicelib.webhooks.configuration import SERVICE_SECRET_KEY

    settings_store.delete_value(SERVICE_SECRET_KEY)


@pytest.fixture
def webhooks(api: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookHarness]:
    from chalicelib.events import queue
    from chalicelib.events.publisher import ListEventSink
    from chalicelib.services import account_events
    from chalicelib.settings import reset_settings
    from chalicelib.webhooks.queue_ops import DEAD_LETTER_QUEUE

    # These tests publish their own events and count what arrives: the accounts they
    # register announce themselves elsewhere (test_emailengine_accounts covers those events).
    monkeypatch.setattr(account_events, "get_event_sink", ListEventSink)
    monkeypatch.setenv("IMAPLESS_WEBHOOK_RETRY_SCHEDULE", FAST_SCHEDULE)
    monkeypatch.setenv("IMAPLESS_WEBHOOK_TIMEOUT_SECONDS", ATTEMPT_TIMEOUT_SECONDS)
    reset_settings()
    harness = WebhookHarness(api=api, sqs=queue.get_sqs_client(), queue_url=queue.queue_url(),
                             dlq_url=queue.queue_url(DEAD_LETTER_QUEUE))
    harness.drain()
    # No service secret left by an earlier test (the API fuzzer posts settings too): choosing
    # EmailEngine's signature style generates one only when none exists.
    forget_service_secret()
    try:
        yield harness
    finally:
        api.post("/v1/settings", {"webhooks": None, "webhooksEnabled": False, "webhookEvents": None,
                                  "inboxNewOnly": None, "webhooksSignature": None})
        harness.drain()
        from chalicelib.services import webhook_settings
        from chalicelib.webhooks import configuration

        for endpoint in webhook_settings.disabled_endpoints():  # a 410 in one test is no state for the next
            configuration.enable_endpoint(endpoint.url, endpoint.account)
        forget_service_secret()
        monkeypatch.undo()
        reset_settings()
