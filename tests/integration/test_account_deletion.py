"""Deleting an account removes everything it owns, and an id registered again starts from nothing.

Real Dovecot + Postfix and a watcher subprocess; the re-registered account sends through an
SMTP sink of the test's own, so "nothing was sent through it" means "nobody connected".
The scheduled send's SQS message carries a 2-minute delay: the test plays it by calling the
consumer with the clock moved past ``sendAt`` instead of waiting.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.services import outbox as outbox_service
from chalicelib.store import deliveries as delivery_store
from chalicelib.store import outbox as outbox_store
from tests.integration.watcher_support import running_watcher
from tests.support.sending import Mailbox
from tests.support.smtp_sink import SmtpSink
from tests.support.webhook_receiver import Reply, WebhookReceiver

SCHEDULE_AHEAD = timedelta(minutes=2)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


def register(api, dovecot, user, account_id: str, *, smtp_host: str, smtp_port: int, verify: bool = True) -> None:
    response = api.post("/v1/account", {
        "account": account_id, "email": user.email, "name": "Tenant", "verify": verify,
        "imap": {"host": dovecot.hostname, "port": dovecot.imap_port, "secure": False,
                 "auth": {"user": user.email, "pass": user.password}},
        "smtp": {"host": smtp_host, "port": smtp_port, "secure": False,
                 "auth": {"user": user.email, "pass": user.password}}})
    assert response.status == 200, response.body


def schedule_send(api, account_id: str, to: str) -> tuple[str, str]:
    """Submit a message for two minutes from now; returns (queueId, messageId)."""
    send_at = (datetime.now(UTC) + SCHEDULE_AHEAD).isoformat()
    response = api.post(f"/v1/account/{account_id}/submit",
                        {"to": to, "subject": "later", "text": "scheduled", "sendAt": send_at})
    assert response.status == 202, response.body
    return response.json["queueId"], response.json["messageId"]


def play_scheduled_delivery(queue_id: str) -> str:
    """What the outbox consumer does when the scheduled SQS message arrives."""
    return outbox_service.process_message(queue_id, now=datetime.now(UTC) + SCHEDULE_AHEAD + timedelta(minutes=1))


def disabled_endpoint_owners(api) -> list[str | None]:
    return [endpoint["account"] for endpoint in api.get("/v1/settings").json["disabledWebhookEndpoints"]]


def first_life_events(events, account_id: str) -> int:
    return len(events.of(account_id, "accountInitialized"))


def test_a_scheduled_send_never_reaches_the_reregistered_id_and_its_first_events_are_all_published(
        api, dovecot, postfix, make_mail_user, events, prefix, sink):
    # Given a watched account with SMTP through Postfix and a message scheduled two minutes ahead
    owner, recipient = make_mail_user(), make_mail_user()
    account_id = prefix + "reborn"
    register(api, dovecot, owner, account_id, smtp_host=postfix.hostname, smtp_port=postfix.smtp_port)
    with running_watcher(events, prefix, prefix + "ns") as watcher:
        events.wait_for(lambda _: first_life_events(events, account_id) == 1, what="accountInitialized")
        queue_id, message_id = schedule_send(api, account_id, recipient.email)

        # When the account is deleted and the same id is registered again on another SMTP server
        assert api.delete(f"/v1/account/{account_id}").status == 200
        register(api, dovecot, owner, account_id, smtp_host="127.0.0.1", smtp_port=sink.port, verify=False)

        # Then the new account's first events are published, not dropped as the old ones' duplicates
        events.wait_for(lambda _: first_life_events(events, account_id) == 2, timeout=30,
                        what="the second life's accountInitialized\n" + watcher.log_text())
        kinds = [e.event for e in events.of(account_id)]
        assert kinds == ["authenticationSuccess", "accountInitialized"] * 2, kinds
        assert len({e.id for e in events.of(account_id)}) == 4

    # And when the scheduled message's queue message arrives, nothing is sent anywhere
    assert play_scheduled_delivery(queue_id) == "missing"
    assert sink.connections == 0, sink.commands
    assert Mailbox(dovecot, recipient).uids("INBOX", ["HEADER", "Message-ID", message_id]) == []


def test_delete_removes_the_outbox_delivery_log_tokens_and_webhook_override(
        api, dovecot, postfix, make_mail_user, webhooks, receiver):
    # Given an account with a webhook override, a bound token, a scheduled send and a logged delivery
    owner, recipient = make_mail_user(), make_mail_user()
    account_id = "del-" + secrets.token_hex(6)
    register(api, dovecot, owner, account_id, smtp_host=postfix.hostname, smtp_port=postfix.smtp_port)
    assert api.put(f"/v1/account/{account_id}", {"webhooks": receiver.url()}).status == 200
    token = api.post("/v1/tokens", {"description": "tenant", "scopes": ["api"], "account": account_id}).json["token"]
    queue_id, _ = schedule_send(api, account_id, recipient.email)
    webhooks.configure_with_secret(receiver.url("/operator"))
    logged, gone = webhooks.event(account_id, "messageNew"), webhooks.event(account_id, "messageDeleted")
    webhooks.publish(logged)
    webhooks.run_until(lambda: (d := webhooks.delivery(logged.id)) is not None and d.status == "delivered")
    # ... and its own endpoint disabled by a 410
    receiver.reply_with(Reply(410))
    webhooks.publish(gone)
    webhooks.run_until(lambda: (d := webhooks.delivery(gone.id)) is not None and d.status == "failed")
    assert account_id in disabled_endpoint_owners(api)

    # When the account is deleted
    assert api.delete(f"/v1/account/{account_id}").status == 200

    # Then nothing of it is left: no outbox entry, no log item, no token, no override
    assert api.get(f"/v1/outbox?account={account_id}").json["messages"] == []
    assert api.get(f"/v1/outbox/{queue_id}").status == 404
    assert api.get(f"/v1/webhooks/deliveries?account={account_id}").json["deliveries"] == []
    assert webhooks.delivery(logged.id) is None
    assert account_id not in disabled_endpoint_owners(api)
    assert api.get(f"/v1/account/{account_id}", token=token).status == 401
    register(api, dovecot, owner, account_id, smtp_host=postfix.hostname, smtp_port=postfix.smtp_port)
    again = api.get(f"/v1/account/{account_id}").json
    assert again.get("webhooks") is None and again.get("webhookEvents") is None
    # And the queue message of the old scheduled send finds nothing to send
    assert play_scheduled_delivery(queue_id) == "missing"
    assert api.delete(f"/v1/account/{account_id}").status == 200


def test_an_interrupted_delete_leaves_no_live_token_and_a_retry_finishes_it(
        api, dovecot, postfix, make_mail_user, monkeypatch):
    # Given an account with a bound token and a scheduled send
    owner, recipient = make_mail_user(), make_mail_user()
    account_id = "del-" + secrets.token_hex(6)
    register(api, dovecot, owner, account_id, smtp_host=postfix.hostname, smtp_port=postfix.smtp_port)
    token = api.post("/v1/tokens", {"description": "tenant", "scopes": ["api"], "account": account_id}).json["token"]
    queue_id, message_id = schedule_send(api, account_id, recipient.email)

    # When a step after the tokens fails once (the delivery log is unavailable)
    real_delete = delivery_store.delete_deliveries_of_account
    failures = iter([RuntimeError("DynamoDB is unavailable")])

    def fail_once(account: str) -> int:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real_delete(account)

    monkeypatch.setattr(delivery_store, "delete_deliveries_of_account", fail_once)
    assert api.delete(f"/v1/account/{account_id}").status == 500

    # Then the token is dead, the account reads as gone, its id is not free and nothing is sent
    assert api.get(f"/v1/account/{account_id}", token=token).status == 401
    assert api.get(f"/v1/account/{account_id}").status == 404
    assert account_id not in [a["account"] for a in api.get("/v1/accounts?pageSize=1000").json["accounts"]]
    assert api.post(f"/v1/account/{account_id}/submit", {"to": recipient.email, "text": "x"}).status == 404
    assert play_scheduled_delivery(queue_id) in ("missing", "cancelled", "orphaned")
    assert Mailbox(dovecot, recipient).uids("INBOX", ["HEADER", "Message-ID", message_id]) == []

    # And a second DELETE finishes the job, a third finds nothing
    assert api.delete(f"/v1/account/{account_id}").status == 200
    assert api.get(f"/v1/outbox?account={account_id}").json["messages"] == []
    assert api.delete(f"/v1/account/{account_id}").status == 404


def test_an_entry_left_by_a_previous_life_of_the_id_is_cancelled_not_sent(
        api, dovecot, postfix, make_mail_user, monkeypatch, sink, sent_events):
    # Given a scheduled send whose entry survives the deletion (it was queued while the
    # deletion ran: here the outbox step is skipped)
    owner, recipient = make_mail_user(), make_mail_user()
    account_id = "del-" + secrets.token_hex(6)
    register(api, dovecot, owner, account_id, smtp_host=postfix.hostname, smtp_port=postfix.smtp_port)
    queue_id, _ = schedule_send(api, account_id, recipient.email)
    with monkeypatch.context() as patched:
        patched.setattr(outbox_store, "delete_entries_of_account", lambda account: 0, raising=False)
        assert api.delete(f"/v1/account/{account_id}").status == 200

    # When the id is registered again on another server and the queue message arrives
    register(api, dovecot, owner, account_id, smtp_host="127.0.0.1", smtp_port=sink.port, verify=False)
    result = play_scheduled_delivery(queue_id)

    # Then the entry is cancelled: no connection to the new server, no event for the new account
    assert result == "orphaned"
    assert api.get(f"/v1/outbox/{queue_id}").json["state"] == "cancelled"
    assert api.get(f"/v1/outbox?account={account_id}").json["messages"] == []  # not the new account's
    assert sink.connections == 0, sink.commands
    assert sent_events.events() == []
    assert api.delete(f"/v1/account/{account_id}").status == 200


def test_an_idempotency_key_of_a_previous_life_is_not_replayed(api, dovecot, postfix, make_mail_user):
    # Given a dry-run submit answered under an Idempotency-Key
    owner = make_mail_user()
    account_id = "del-" + secrets.token_hex(6)
    register(api, dovecot, owner, account_id, smtp_host=postfix.hostname, smtp_port=postfix.smtp_port)
    body, headers = {"to": owner.email, "text": "x", "dryRun": True}, {"Idempotency-Key": "k-" + account_id}
    first = api.post(f"/v1/account/{account_id}/submit", body, headers=headers)
    assert first.status == 200 and api.post(f"/v1/account/{account_id}/submit", body, headers=headers) \
        .headers.get("Idempotent-Replayed") == "true"

    # When the account is deleted and registered again
    assert api.delete(f"/v1/account/{account_id}").status == 200
    register(api, dovecot, owner, account_id, smtp_host=postfix.hostname, smtp_port=postfix.smtp_port)

    # Then the same key and body run afresh instead of answering with the first life's result
    again = api.post(f"/v1/account/{account_id}/submit", body, headers=headers)
    assert again.status == 200 and "Idempotent-Replayed" not in again.headers
    assert again.json["queueId"] != first.json["queueId"]
    assert api.delete(f"/v1/account/{account_id}").status == 200


def test_an_event_of_a_previous_life_in_the_queue_reaches_neither_the_new_account_nor_its_log(
        api, dovecot, postfix, make_mail_user, webhooks, receiver):
    # Given an account whose webhooks go to its own endpoint, and one of its events still queued
    # (in flight, or waiting for a retry) when the account is deleted
    owner = make_mail_user()
    account_id = "del-" + secrets.token_hex(6)
    webhooks.configure_with_secret(receiver.url("/operator"))
    register(api, dovecot, owner, account_id, smtp_host=postfix.hostname, smtp_port=postfix.smtp_port)
    assert api.put(f"/v1/account/{account_id}", {"webhooks": receiver.url("/first")}).status == 200
    old = webhooks.event(account_id, "messageNew", subject="for the first owner")
    assert api.delete(f"/v1/account/{account_id}").status == 200

    # When someone registers the id again with an endpoint of their own, and the queue hands out
    # the old event followed by one of the new account's
    register(api, dovecot, owner, account_id, smtp_host=postfix.hostname, smtp_port=postfix.smtp_port)
    assert api.put(f"/v1/account/{account_id}", {"webhooks": receiver.url("/second")}).status == 200
    webhooks.publish(old)
    new = webhooks.event(account_id, "messageNew", subject="for the second owner")
    webhooks.publish(new)
    webhooks.run_until(lambda: (d := webhooks.delivery(new.id)) is not None and d.status == "delivered")

    # Then only the new account's event was posted, and the old one is not in the new account's log
    posted = [(r.path, json.loads(r.body)["id"]) for r in receiver.requests]
    assert posted == [("/second", new.id)], posted
    assert webhooks.delivery(old.id) is None
    assert [d["id"] for d in api.get(f"/v1/webhooks/deliveries?account={account_id}").json["deliveries"]] \
        == [new.id]
    assert api.delete(f"/v1/account/{account_id}").status == 200
