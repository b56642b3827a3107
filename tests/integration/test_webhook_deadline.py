"""One attempt has one deadline (connect + send + the whole answer), and a slow receiver of
one account holds up nobody else: drip-feeding receivers on loopback.

The attempt budget is 1.5 s here (tests/support/webhooks.py); a drip-feeding receiver sends
its answer one byte every 0.4 s, which no per-read timeout ever notices.
"""

from __future__ import annotations

import time

import pytest

from tests.support.webhook_receiver import Reply, WebhookReceiver

DRIP_SECONDS = 0.4
SLACK_SECONDS = 0.5


@pytest.fixture
def dripping_receiver():
    with WebhookReceiver() as server:
        server.default_reply = Reply(200, drip_seconds=DRIP_SECONDS)
        yield server


def register_account(api, account: str) -> None:
    response = api.post("/v1/account", {
        "account": account, "email": f"{account}@example.test", "verify": False,
        "imap": {"host": "127.0.0.1", "port": 1143, "auth": {"user": account, "pass": "secret"}}})
    assert response.status == 200, response.body


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_drip_fed_answer_is_abandoned_when_the_attempt_budget_is_spent(webhooks, test_pki, scheme):
    from chalicelib.webhooks.client import post_webhook

    # Given a receiver that answers one byte every 0.4 s (each read gets a byte in time)
    budget = 1.0
    with WebhookReceiver(pki=test_pki if scheme == "https" else None) as dripping:
        dripping.default_reply = Reply(200, drip_seconds=DRIP_SECONDS)

        # When one attempt is made with a 1 s budget
        started = time.monotonic()
        result = post_webhook(dripping.url(host="localhost"), b"{}", {}, budget)
        elapsed = time.monotonic() - started

        # Then it ends within the budget (plus scheduling slack), as a failed attempt saying why
        assert elapsed < budget + SLACK_SECONDS, elapsed
        assert result.status_code is None and not result.succeeded
        assert result.error_code == "Timeout"
        assert "did not complete the request within 1 s" in (result.error or "")
        # ... and the connection was dropped, not left open to the receiver
        assert _wait(lambda: dripping.hangups)


def test_a_slow_receiver_of_one_account_does_not_delay_another_accounts_events(webhooks, receiver,
                                                                                 dripping_receiver, api):
    from chalicelib.settings import get_settings

    budget = get_settings().webhook_timeout_seconds
    # Given account A whose own endpoint drip-feeds its answers, and account B on the global endpoint
    webhooks.configure_with_secret(receiver.url())
    register_account(api, "acc-drip")
    register_account(api, "acc-quick")
    try:
        assert api.put("/v1/account/acc-drip", {"webhooks": dripping_receiver.url("/a")}).status == 200
        slow = [webhooks.event("acc-drip", "messageNew", n=n) for n in range(3)]
        quick = [webhooks.event("acc-quick", "messageNew", n=n) for n in range(3)]

        # When A's events and then B's are queued, and the consumer takes them in one batch
        webhooks.publish(*slow, *quick)
        published = time.time()
        poll_started = time.monotonic()
        webhooks.poller().poll_once()
        poll_seconds = time.monotonic() - poll_started

        # Then B's events arrived within the normal latency, not after A's attempts
        arrived = receiver.wait_for(3)
        assert [r.webhook_id for r in arrived] == [e.id for e in quick]
        assert max(r.received_at for r in arrived) - published < budget + 1.0
        # ... A's first event was attempted once, abandoned at the deadline, and logged as a
        # failed attempt with the reason; A's later events wait behind it, unattempted
        assert [r.webhook_id for r in dripping_receiver.requests] == [slow[0].id]
        logged = webhooks.delivery(slow[0].id)
        assert (logged.status, logged.attempts, logged.last_status_code) == ("pending", 1, None)
        assert f"did not complete the request within {budget:g} s" in logged.last_error
        assert webhooks.delivery(slow[1].id) is None
        # ... and the whole batch took about one attempt budget
        assert poll_seconds < budget + 1.0 + SLACK_SECONDS, poll_seconds
    finally:
        api.put("/v1/account/acc-drip", {"webhooks": None})
        api.delete("/v1/account/acc-drip")
        api.delete("/v1/account/acc-quick")


def test_a_receiver_that_answers_just_inside_the_budget_does_not_hold_up_the_batch(webhooks, receiver, api):
    from chalicelib.settings import get_settings

    budget = get_settings().webhook_timeout_seconds
    # Given account A whose endpoint takes most of the budget for every answer (each succeeds)
    webhooks.configure_with_secret(receiver.url())
    register_account(api, "acc-sluggish")
    with WebhookReceiver() as sluggish:
        sluggish.default_reply = Reply(200, delay_seconds=budget * 0.8)
        try:
            assert api.put("/v1/account/acc-sluggish", {"webhooks": sluggish.url("/a")}).status == 200
            slow = [webhooks.event("acc-sluggish", "messageNew", n=n) for n in range(5)]
            quick = [webhooks.event("acc-quick2", "messageNew", n=n) for n in range(3)]

            # When A's five events and then B's three are taken in one batch
            webhooks.publish(*slow, *quick)
            published = time.time()
            poll_started = time.monotonic()
            webhooks.poller().poll_once()
            poll_seconds = time.monotonic() - poll_started

            # Then B's events arrived within one attempt budget (plus the normal latency)
            arrived = receiver.wait_for(3)
            assert max(r.received_at for r in arrived) - published < budget + 1.0
            # ... A's events went out in order, as many as fit in about one budget; the rest
            # were handed back to the queue unattempted, and the batch ended in about two budgets
            sent = [r.webhook_id for r in sluggish.requests]
            assert sent == [e.id for e in slow[:len(sent)]] and 1 <= len(sent) < len(slow)
            assert all(webhooks.delivery(e.id) is None for e in slow[len(sent):])
            assert poll_seconds < 2 * budget + SLACK_SECONDS, poll_seconds

            # When the consumer keeps running, A's remaining events follow, still in order
            webhooks.run_until(lambda: len(sluggish.requests) >= len(slow))
            assert [r.webhook_id for r in sluggish.requests] == [e.id for e in slow]
        finally:
            api.put("/v1/account/acc-sluggish", {"webhooks": None})
            api.delete("/v1/account/acc-sluggish")


def _wait(condition, timeout: float = 3.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server
