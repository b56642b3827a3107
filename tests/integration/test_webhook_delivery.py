"""Webhook delivery end to end below the watcher: events on the real (moto) FIFO queue, the
Lambda handler run on what SQS hands out, a real HTTP receiver on loopback.

Retries use a 1 s schedule (five retries) and a 1.5 s attempt timeout (tests/support/webhooks.py).
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.support.webhook_receiver import ReceivedRequest, Reply, WebhookReceiver, verify_signature


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


def body_of(request: ReceivedRequest) -> dict:
    return json.loads(request.body)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def register_account(api, account: str) -> None:
    response = api.post("/v1/account", {
        "account": account, "email": f"{account}@example.test", "verify": False,
        "imap": {"host": "127.0.0.1", "port": 1143, "auth": {"user": account, "pass": "secret"}}})
    assert response.status == 200, response.body


# -- the request ---------------------------------------------------------------------------------


def test_an_event_arrives_once_signed_with_the_standard_webhooks_headers(webhooks, receiver):
    # Given webhooks configured with a known secret
    secret = webhooks.configure_with_secret(receiver.url())
    event = webhooks.event("acc-signed", "messageNew", subject="Hello")

    # When the event is queued and the consumer runs
    webhooks.publish(event)
    webhooks.run_until(lambda: len(receiver.requests) >= 1)

    # Then the receiver got the event's wire form, verifiable with the secret
    request = receiver.requests[0]
    assert request.body == event.to_json().encode()
    assert request.webhook_id == event.id
    assert request.headers["content-type"] == "application/json"
    assert verify_signature(secret, request.headers, request.body)
    assert not verify_signature(secret, request.headers, request.body + b" ")
    assert body_of(request) == {"id": event.id, "account": "acc-signed", "event": "messageNew", "path": "INBOX",
                                "date": event.to_json().split('"date":"')[1].split('"')[0],
                                "data": {"subject": "Hello"}}
    # ... and the log says delivered after one attempt
    logged = webhooks.delivery(event.id)
    assert (logged.status, logged.attempts, logged.last_status_code) == ("delivered", 1, 200)


def test_the_same_event_queued_again_later_is_not_delivered_twice(webhooks, receiver):
    # Given an event that was delivered
    webhooks.configure_with_secret(receiver.url())
    event = webhooks.event("acc-idem")
    webhooks.publish(event)
    webhooks.run_until(lambda: len(receiver.requests) >= 1)

    # When the watcher emits it again after SQS's 5-minute deduplication window
    # (a different deduplication id lets it through the queue)
    webhooks.sqs.send_message(QueueUrl=webhooks.queue_url, MessageBody=event.to_json(),
                              MessageGroupId=event.account, MessageDeduplicationId=event.id + "-again")
    webhooks.run_until(lambda: webhooks.queue_counts() == (0, 0))

    # Then the receiver saw it once, and the log still counts one attempt
    assert [r.webhook_id for r in receiver.requests] == [event.id]
    assert webhooks.delivery(event.id).attempts == 1


# -- retries -------------------------------------------------------------------------------------


def test_a_500_is_retried_with_the_same_id_until_it_succeeds_then_never_again(webhooks, receiver):
    # Given a receiver that fails twice
    secret = webhooks.configure_with_secret(receiver.url())
    receiver.reply_with(Reply(500, body=b"down"), Reply(500))
    event = webhooks.event("acc-500")

    # When the event is delivered
    published = time.time()
    webhooks.publish(event)
    webhooks.run_until(lambda: len(receiver.requests) >= 3)
    webhooks.run_for(2.5)

    # Then three attempts, all the same signed event, and nothing after the success
    requests = receiver.requests
    assert [r.webhook_id for r in requests] == [event.id] * 3
    assert all(verify_signature(secret, r.headers, r.body) for r in requests)
    assert requests[1].received_at >= published + 1  # waited for the first retry slot
    logged = webhooks.delivery(event.id)
    assert (logged.status, logged.attempts, logged.last_status_code) == ("delivered", 3, 200)


def test_a_receiver_that_does_not_answer_in_time_is_retried(webhooks, receiver):
    # Given a receiver that answers the first request after the 1.5 s attempt timeout
    webhooks.configure_with_secret(receiver.url())
    receiver.reply_with(Reply(200, delay_seconds=3))
    event = webhooks.event("acc-slow")

    # When the event is delivered
    webhooks.publish(event)
    webhooks.run_until(lambda: (d := webhooks.delivery(event.id)) is not None and d.status == "delivered")

    # Then the first attempt counted as failed and the second succeeded
    assert [r.webhook_id for r in receiver.requests] == [event.id] * 2
    assert webhooks.delivery(event.id).attempts == 2


def test_a_refused_connection_is_retried_until_the_receiver_listens(webhooks):
    # Given a URL where nothing listens yet
    port = free_port()
    webhooks.configure_with_secret(f"http://127.0.0.1:{port}/hooks")
    event = webhooks.event("acc-refused")

    # When the first attempt runs
    webhooks.publish(event)
    webhooks.run_until(lambda: (d := webhooks.delivery(event.id)) is not None and d.attempts >= 1)

    # Then it is pending with the reason, and succeeds once a receiver starts on that port
    logged = webhooks.delivery(event.id)
    assert logged.status == "pending" and "refused" in logged.last_error and logged.next_attempt_at
    with WebhookReceiver(port=port) as late_receiver:
        webhooks.run_until(lambda: len(late_receiver.requests) >= 1)
        assert late_receiver.requests[0].webhook_id == event.id


def test_retry_after_of_a_429_is_honoured(webhooks, receiver):
    # Given a receiver that asks to come back in 2 s (the schedule would say 1 s)
    webhooks.configure_with_secret(receiver.url())
    receiver.reply_with(Reply(429, headers={"Retry-After": "2"}))
    event = webhooks.event("acc-429")

    # When the event is delivered
    webhooks.publish(event)
    webhooks.run_until(lambda: len(receiver.requests) >= 2)

    # Then the second attempt came no sooner than asked
    first, second = receiver.requests[:2]
    assert second.received_at - first.received_at >= 1.9


def test_after_the_last_attempt_every_event_of_the_account_is_dead_lettered_in_order(webhooks, receiver):
    # Given a receiver that always fails, and three events of one account
    webhooks.configure_with_secret(receiver.url())
    receiver.default_reply = Reply(500)
    events = [webhooks.event("acc-dlq", "messageNew", n=n) for n in range(3)]

    # When the consumer runs until the queue is empty
    webhooks.publish(*events)
    webhooks.run_until(lambda: webhooks.queue_counts() == (0, 0), timeout=30)

    # Then nothing is lost: all three are in the dead-letter queue, in order, unchanged
    dead = webhooks.take_dead_letters()
    assert [m["Body"] for m in dead] == [e.to_json() for e in events]
    assert {m["MessageAttributes"]["failureReason"]["StringValue"] for m in dead} == {"retriesExhausted"}
    # ... the first had every attempt its schedule allowed, and the log agrees with the receiver
    attempts = {e.id: sum(1 for r in receiver.requests if r.webhook_id == e.id) for e in events}
    assert attempts[events[0].id] >= 3
    for event in events:
        logged = webhooks.delivery(event.id)
        assert (logged.status, logged.reason, logged.attempts) == ("failed", "retriesExhausted", attempts[event.id])
    # ... and later events were never sent before an earlier one was given up
    order = [r.webhook_id for r in receiver.requests]
    assert order == sorted(order, key=[e.id for e in events].index)


def test_410_disables_the_endpoint_until_its_url_is_saved_again(webhooks, receiver, api):
    # Given a receiver that answers 410 Gone
    webhooks.configure_with_secret(receiver.url())
    receiver.reply_with(Reply(410))
    gone, later = webhooks.event("acc-410"), webhooks.event("acc-410", "messageDeleted")

    # When two events are queued
    webhooks.publish(gone, later)
    webhooks.run_until(lambda: webhooks.queue_counts() == (0, 0))

    # Then the first was tried once and dead-lettered, the second never sent
    assert [r.webhook_id for r in receiver.requests] == [gone.id]
    assert (webhooks.delivery(gone.id).status, webhooks.delivery(gone.id).reason) == ("failed", "endpointGone")
    assert (webhooks.delivery(later.id).status, webhooks.delivery(later.id).reason) == ("skipped", "endpointDisabled")
    assert [m["Body"] for m in webhooks.take_dead_letters()] == [gone.to_json()]
    disabled = api.get("/v1/settings").json["disabledWebhookEndpoints"]
    assert [(d["url"], d["statusCode"]) for d in disabled] == [(receiver.url(), 410)]

    # When the URL is saved again and the skipped event replayed
    webhooks.configure(receiver.url())
    assert api.get("/v1/settings").json["disabledWebhookEndpoints"] == []
    assert api.post(f"/v1/webhooks/replay/{later.id}").status == 200
    webhooks.run_until(lambda: len(receiver.requests) >= 2)

    # Then it arrives
    assert receiver.requests[1].webhook_id == later.id


# -- what is sent where --------------------------------------------------------------------------


def test_event_types_outside_webhook_events_are_not_sent(webhooks, receiver):
    # Given only messageNew subscribed
    webhooks.configure_with_secret(receiver.url(), events=["messageNew"])
    deleted, new = webhooks.event("acc-filter", "messageDeleted"), webhooks.event("acc-filter", "messageNew")

    # When both are queued
    webhooks.publish(deleted, new)
    webhooks.run_until(lambda: webhooks.queue_counts() == (0, 0))

    # Then only messageNew arrived; the other is logged as skipped (replayable later)
    assert [r.webhook_id for r in receiver.requests] == [new.id]
    assert (webhooks.delivery(deleted.id).status, webhooks.delivery(deleted.id).reason) == \
        ("skipped", "eventNotSubscribed")


def test_a_filter_change_applies_to_the_next_event_whatever_the_cache_setting(webhooks, receiver, monkeypatch):
    from chalicelib.settings import reset_settings

    # Given a long config cache, only messageNew subscribed, and this process having just delivered under it
    monkeypatch.setenv("IMAPLESS_WEBHOOK_CONFIG_CACHE_SECONDS", "60")
    reset_settings()
    webhooks.configure_with_secret(receiver.url(), events=["messageNew"])
    first = webhooks.event("acc-refilter", "messageNew")
    webhooks.publish(first)
    webhooks.run_until(lambda: webhooks.queue_counts() == (0, 0))
    assert [r.webhook_id for r in receiver.requests] == [first.id]

    # When the filter changes to messageDeleted only, and one event of each type is published right after
    response = webhooks.api.post("/v1/settings", {"webhookEvents": ["messageDeleted"]})
    assert response.status == 200, response.body
    deleted, new = webhooks.event("acc-refilter", "messageDeleted"), webhooks.event("acc-refilter", "messageNew")
    webhooks.publish(deleted, new)
    webhooks.run_until(lambda: webhooks.queue_counts() == (0, 0))

    # Then the newly selected type is delivered and the dropped one is not
    assert [r.webhook_id for r in receiver.requests] == [first.id, deleted.id]
    assert (webhooks.delivery(new.id).status, webhooks.delivery(new.id).reason) == ("skipped", "eventNotSubscribed")


def test_disabling_webhooks_or_an_account_type_applies_to_the_next_event(webhooks, receiver, api, monkeypatch):
    from chalicelib.settings import reset_settings

    # Given a long config cache, an account with its own filter, and an event just delivered under it
    monkeypatch.setenv("IMAPLESS_WEBHOOK_CONFIG_CACHE_SECONDS", "60")
    reset_settings()
    webhooks.configure_with_secret(receiver.url())
    register_account(api, "acc-own-refilter")
    try:
        assert api.put("/v1/account/acc-own-refilter", {"webhookEvents": ["messageNew"]}).status == 200
        first = webhooks.event("acc-own-refilter", "messageNew")
        webhooks.publish(first)
        webhooks.run_until(lambda: webhooks.queue_counts() == (0, 0))
        assert [r.webhook_id for r in receiver.requests] == [first.id]

        # When the account drops messageNew, then an event of it is published
        assert api.put("/v1/account/acc-own-refilter", {"webhookEvents": ["messageDeleted"]}).status == 200
        dropped = webhooks.event("acc-own-refilter", "messageNew")
        webhooks.publish(dropped)
        webhooks.run_until(lambda: webhooks.queue_counts() == (0, 0))

        # ... and when webhooks are switched off, then an event of a subscribed type is published
        assert api.post("/v1/settings", {"webhooksEnabled": False}).status == 200
        off = webhooks.event("acc-own-refilter", "messageDeleted")
        webhooks.publish(off)
        webhooks.run_until(lambda: webhooks.queue_counts() == (0, 0))

        # Then neither was sent
        assert [r.webhook_id for r in receiver.requests] == [first.id]
        assert webhooks.delivery(dropped.id).reason == "eventNotSubscribed"
        assert webhooks.delivery(off.id).reason == "webhooksDisabled"
    finally:
        api.delete("/v1/account/acc-own-refilter")


def test_an_account_override_sends_that_accounts_events_elsewhere_with_its_own_filter(webhooks, receiver, api):
    # Given a global receiver, and one account overriding URL and event types
    webhooks.configure_with_secret(receiver.url())
    with WebhookReceiver() as own_receiver:
        register_account(api, "acc-own")
        register_account(api, "acc-global")
        response = api.put("/v1/account/acc-own", {"webhooks": own_receiver.url("/own"),
                                                   "webhookEvents": ["messageDeleted"]})
        assert response.status == 200, response.body
        assert (response.json["webhooks"], response.json["webhookEvents"]) == (own_receiver.url("/own"),
                                                                               ["messageDeleted"])
        own_new, own_deleted = webhooks.event("acc-own", "messageNew"), webhooks.event("acc-own", "messageDeleted")
        other = webhooks.event("acc-global", "messageNew")

        # When events of both accounts are queued
        webhooks.publish(own_new, own_deleted, other)
        webhooks.run_until(lambda: webhooks.queue_counts() == (0, 0))

        # Then each went where its account says, filtered by its account's list
        assert [(r.path, r.webhook_id) for r in own_receiver.requests] == [("/own", own_deleted.id)]
        assert [r.webhook_id for r in receiver.requests] == [other.id]
        assert webhooks.delivery(own_new.id).reason == "eventNotSubscribed"

        # When the override is removed, the account follows the global settings again
        api.put("/v1/account/acc-own", {"webhooks": None, "webhookEvents": None})
        again = webhooks.event("acc-own", "messageNew")
        webhooks.publish(again)
        webhooks.run_until(lambda: len(receiver.requests) >= 2)
        assert receiver.requests[1].webhook_id == again.id
    api.delete("/v1/account/acc-own")
    api.delete("/v1/account/acc-global")


def test_order_per_account_holds_under_retries_and_other_accounts_do_not_wait(webhooks, receiver, api):
    # Given account X whose receiver fails X's second event twice, and account Y elsewhere
    webhooks.configure_with_secret(receiver.url())
    register_account(api, "acc-x")  # before its events: an event older than its account is a deleted one's
    xs = [webhooks.event("acc-x", "messageNew", n=n) for n in range(4)]
    ys = [webhooks.event("acc-y", "messageNew", n=n) for n in range(3)]
    failures = {xs[1].id: 2}

    def respond(request: ReceivedRequest) -> Reply:
        if failures.get(request.webhook_id, 0) > 0:
            failures[request.webhook_id] -= 1
            return Reply(503)
        return Reply(200)

    with WebhookReceiver() as x_receiver:
        x_receiver.responder = respond
        api.put("/v1/account/acc-x", {"webhooks": x_receiver.url("/x")})

        # When both accounts' events are queued, interleaved
        webhooks.publish(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], xs[3])
        webhooks.run_until(lambda: len(x_receiver.requests) >= 6 and len(receiver.requests) >= 3)

        # Then X's events arrived in order, the failing one retried before any later one was sent
        assert [r.webhook_id for r in x_receiver.requests] == [xs[0].id, xs[1].id, xs[1].id, xs[1].id,
                                                                xs[2].id, xs[3].id]
        # ... and Y's events were all delivered before X's second event finally got through
        x2_success = x_receiver.requests[3].received_at
        assert [r.webhook_id for r in receiver.requests] == [y.id for y in ys]
        assert max(r.received_at for r in receiver.requests) < x2_success
    api.delete("/v1/account/acc-x")


def test_a_poison_message_goes_to_the_dead_letter_queue_without_blocking_its_batch(webhooks, receiver):
    from app import deliver_webhooks
    from local.dispatcher import LocalLambdaContext, lambda_sqs_event

    # Given a batch with a message that is not an event, followed by events of its group and another
    webhooks.configure_with_secret(receiver.url())
    same_group, other_group = webhooks.event("acc-poison"), webhooks.event("acc-clean")
    webhooks.sqs.send_message(QueueUrl=webhooks.queue_url, MessageBody="not json {", MessageGroupId="acc-poison",
                              MessageDeduplicationId="poison-1")
    webhooks.publish(same_group, other_group)
    messages = webhooks.sqs.receive_message(QueueUrl=webhooks.queue_url, MaxNumberOfMessages=10,
                                            MessageSystemAttributeNames=["All"],
                                            MessageAttributeNames=["All"])["Messages"]
    assert len(messages) == 3
    arn = webhooks.sqs.get_queue_attributes(QueueUrl=webhooks.queue_url,
                                            AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    # When the Lambda handler gets that batch
    response = deliver_webhooks(lambda_sqs_event(messages, arn, "us-east-1"), LocalLambdaContext())

    # Then no record failed, both events were delivered, the poison is in the DLQ with its reason
    assert response == {"batchItemFailures": []}
    assert {r.webhook_id for r in receiver.requests} == {same_group.id, other_group.id}
    dead = webhooks.take_dead_letters()
    assert [(m["Body"], m["MessageAttributes"]["failureReason"]["StringValue"]) for m in dead] == \
        [("not json {", "poison")]
    webhooks.sqs.delete_message_batch(QueueUrl=webhooks.queue_url, Entries=[
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])


# -- outbound policy -----------------------------------------------------------------------------


def test_a_redirect_is_reported_not_followed(webhooks, receiver):
    # Given a receiver that redirects to another one
    with WebhookReceiver() as target:
        webhooks.configure_with_secret(receiver.url())
        receiver.default_reply = Reply(302, headers={"Location": target.url()})
        event = webhooks.event("acc-redirect")

        # When the event is attempted
        webhooks.publish(event)
        webhooks.run_until(lambda: len(receiver.requests) >= 1 and webhooks.delivery(event.id) is not None)

        # Then the redirect counts as a failed attempt and the target never hears of it
        logged = webhooks.delivery(event.id)
        assert (logged.status, logged.last_status_code) == ("pending", 302)
        assert target.requests == []


def test_a_host_that_resolves_to_the_metadata_address_at_delivery_time_is_not_contacted(webhooks, receiver,
                                                                                       monkeypatch):
    # Given a host name that resolved to loopback when it was saved ...
    real_getaddrinfo = socket.getaddrinfo
    answers = {"rebind.imapless.test": "127.0.0.1"}

    def resolver(host, port, *args, **kwargs):
        if host in answers:
            return real_getaddrinfo(answers[host], port, *args, **kwargs)
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    webhooks.configure_with_secret(receiver.url(host="rebind.imapless.test"))

    # ... and to the cloud metadata service by the time the event is sent (DNS rebinding)
    answers["rebind.imapless.test"] = "169.254.169.254"
    event = webhooks.event("acc-rebind")
    webhooks.publish(event)
    webhooks.run_until(lambda: webhooks.delivery(event.id) is not None)

    # Then no connection was made and the log says why
    logged = webhooks.delivery(event.id)
    assert logged.status == "pending" and "169.254.169.254" in logged.last_error
    assert receiver.requests == []


def test_an_https_receiver_is_reached_by_name_with_its_certificate_checked(webhooks, test_pki):
    # Given an HTTPS receiver whose certificate names localhost
    with WebhookReceiver(pki=test_pki) as tls_receiver:
        secret = webhooks.configure_with_secret(tls_receiver.url(host="localhost"))
        event = webhooks.event("acc-tls")

        # When an event is delivered
        webhooks.publish(event)
        webhooks.run_until(lambda: len(tls_receiver.requests) >= 1)

        # Then it arrived over TLS (verified against the test CA, SNI localhost) and is signed
        assert tls_receiver.requests[0].headers["host"] == f"localhost:{tls_receiver.port}"
        assert verify_signature(secret, tls_receiver.requests[0].headers, tls_receiver.requests[0].body)


def test_events_are_logged_as_skipped_while_webhooks_are_off(webhooks):
    # Given webhooks switched off
    webhooks.api.post("/v1/settings", {"webhooksEnabled": False})
    event = webhooks.event("acc-off")

    # When an event is consumed
    started = time.monotonic()
    webhooks.publish(event)
    webhooks.run_until(lambda: webhooks.delivery(event.id) is not None)

    # Then it is logged as skipped (a replay can send it later) and removed from the queue
    assert (webhooks.delivery(event.id).status, webhooks.delivery(event.id).reason) == ("skipped", "webhooksDisabled")
    assert webhooks.queue_counts() == (0, 0)
    assert time.monotonic() - started < 5
