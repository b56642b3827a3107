"""``python -m local.dispatcher`` as a process: Lambda's SQS poller, locally, against the session's moto."""

from __future__ import annotations

import signal
import time

from tests.support.dispatcher import START_TIMEOUT_SECONDS, dispatcher_process
from tests.support.webhook_receiver import ReceivedRequest, Reply, WebhookReceiver, verify_signature

STOP_TIMEOUT_SECONDS = 10


def test_the_dispatcher_process_delivers_in_order_per_account_and_stops_cleanly(webhooks, tmp_path):
    # Given webhooks configured, and a receiver that fails one event of account b once
    with WebhookReceiver() as receiver:
        secret = webhooks.configure_with_secret(receiver.url())
        accounts = ["acc-proc-a", "acc-proc-b", "acc-proc-c"]
        events = [webhooks.event(account, "messageNew", n=n) for n in range(10) for account in accounts]
        flaky = next(e for e in events if e.account == "acc-proc-b" and e.data["n"] == 3)
        failures = {flaky.id: 1}

        def respond(request: ReceivedRequest) -> Reply:
            if failures.get(request.webhook_id, 0) > 0:
                failures[request.webhook_id] -= 1
                return Reply(500)
            return Reply(200)

        receiver.responder = respond

        with dispatcher_process(tmp_path / "dispatcher.log") as process:
            # When events are queued while the dispatcher runs
            webhooks.publish(*events)

            # Then every event arrives, signed, each account's in the order queued
            receiver.wait_for(len(events) + 1, timeout=30)
            requests = receiver.requests
            assert all(verify_signature(secret, r.headers, r.body) for r in requests)
            for account in accounts:
                expected = [e.id for e in events if e.account == account]
                arrived = [r.webhook_id for r in requests if r.webhook_id in expected]
                deduped = [wid for i, wid in enumerate(arrived) if wid not in arrived[:i]]
                assert deduped == expected
            assert [r.webhook_id for r in requests].count(flaky.id) == 2

            # When it is asked to stop
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=STOP_TIMEOUT_SECONDS)

        # Then it stops promptly and cleanly
        assert code == 0
        assert time.monotonic() - started < STOP_TIMEOUT_SECONDS
        log = (tmp_path / "dispatcher.log").read_text()
        assert "dispatcher stopped" in log
        assert secret not in log


def test_the_dispatcher_process_logs_what_reaches_the_dead_letter_queue(webhooks, tmp_path):
    # Given the dispatcher running, as under `make run`
    event = webhooks.event("acc-proc-dlq", "messageNew")
    with dispatcher_process(tmp_path / "dispatcher.log"):
        # When an event lands in the dead-letter queue the way SQS's redrive moves it
        webhooks.sqs.send_message(QueueUrl=webhooks.dlq_url, MessageBody=event.to_json(),
                                  MessageGroupId=event.account, MessageDeduplicationId=event.id)

        # Then the dead-letter recorder logs it as failed and empties the queue
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while webhooks.delivery(event.id) is None or webhooks.queue_counts(webhooks.dlq_url) != (0, 0):
            assert time.monotonic() < deadline, (tmp_path / "dispatcher.log").read_text()
            time.sleep(0.1)
    logged = webhooks.delivery(event.id)
    assert (logged.status, logged.reason) == ("failed", "deadLettered")
