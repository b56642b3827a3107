"""The outbox: temporary failures retried with backoff and delivered once, schedules, cancels,
giving up, and the consumer's guards against duplicate queue messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.services import outbox as outbox_service
from tests.support.sending import (
    Mailbox,
    register_sender,
    run_outbox_until,
)


@pytest.fixture
def fast_retries(sending_settings):
    sending_settings(IMAPLESS_SEND_RETRY_BASE_SECONDS="1", IMAPLESS_SEND_RETRY_MAX_SECONDS="2")


@pytest.fixture
def sender(make_mail_user):
    return make_mail_user()


@pytest.fixture
def account(api, dovecot, postfix, sender):
    return register_sender(api, dovecot, postfix, sender)


@pytest.fixture
def deferred_recipient(make_mail_user, postfix):
    """A recipient Postfix answers 451 for, until the test lifts it."""
    user = make_mail_user()
    postfix.defer_recipients([user.email])
    yield user
    postfix.defer_recipients([])


def outbox_entry(api, queue_id: str) -> dict:
    response = api.get(f"/v1/outbox/{queue_id}")
    assert response.status == 200, response.body
    return response.json


class TestTemporaryFailures:
    def test_a_4xx_is_queued_retried_with_backoff_and_delivered_exactly_once(
            self, api, dovecot, postfix, account, sender, deferred_recipient, sent_events, fast_retries):
        # Given a recipient the server temporarily refuses
        # When a message is submitted to it
        response = api.post(f"/v1/account/{account}/submit",
                            {"to": deferred_recipient.email, "subject": "retry me", "text": "eventually"})

        # Then it is queued, not failed, and the attempt is reported
        assert response.status == 202, response.body
        queue_id, message_id = response.json["queueId"], response.json["messageId"]
        assert response.json["response"] == "Queued for delivery"
        entry = outbox_entry(api, queue_id)
        assert entry["state"] == "queued" and entry["attemptsMade"] == 1 and entry["deliveryAttempts"] == 10
        assert entry["lastError"]["code"] == "RecipientsDeferred"
        assert entry["lastError"]["serverResponse"].startswith("451 4.7.1")
        [first_error] = sent_events.events("messageDeliveryError")
        assert first_error.data["temporary"] is True and first_error.data["attempt"] == 1
        assert first_error.data["nextAttempt"] is not None

        # When the consumer retries while the server still refuses, it backs off again
        run_outbox_until(lambda: outbox_entry(api, queue_id)["attemptsMade"] == 2)
        assert outbox_entry(api, queue_id)["state"] == "queued"

        # And once the server accepts again, the next retry delivers it
        postfix.defer_recipients([])
        run_outbox_until(lambda: outbox_entry(api, queue_id)["state"] == "sent")
        entry = outbox_entry(api, queue_id)
        assert entry["attemptsMade"] == 3 and entry["response"].startswith("250 ")

        # Then the recipient has it exactly once, and so has the Sent folder
        inbox = Mailbox(dovecot, deferred_recipient)
        assert len(inbox.wait_for(message_id)) == 1
        assert len(Mailbox(dovecot, sender).wait_for(message_id, "Sent")) == 1
        kinds = [e.event for e in sent_events.events()]
        assert kinds == ["messageDeliveryError", "messageDeliveryError", "messageSent"]
        assert sent_events.events("messageSent")[0].data["attempt"] == 3
        # And a duplicate queue message for it changes nothing
        assert outbox_service.process_message(queue_id) == "sent"
        assert len(inbox.uids("INBOX", ["HEADER", "Message-ID", message_id])) == 1

    def test_giving_up_after_delivery_attempts_emits_message_failed(
            self, api, account, deferred_recipient, sent_events, fast_retries):
        response = api.post(f"/v1/account/{account}/submit", {
            "to": deferred_recipient.email, "subject": "never", "text": "x", "deliveryAttempts": 2})
        assert response.status == 202, response.body
        queue_id = response.json["queueId"]

        run_outbox_until(lambda: outbox_entry(api, queue_id)["state"] != "queued")

        entry = outbox_entry(api, queue_id)
        assert entry["state"] == "failed" and entry["attemptsMade"] == 2
        assert [e.event for e in sent_events.events()] == [
            "messageDeliveryError", "messageDeliveryError", "messageFailed"]
        failed = sent_events.events("messageFailed")[0]
        assert failed.data["attempts"] == 2 and failed.data["code"] == "RecipientsDeferred"

    def test_a_single_attempt_request_fails_at_once_with_503(self, api, account, deferred_recipient, sent_events):
        response = api.post(f"/v1/account/{account}/submit", {
            "to": deferred_recipient.email, "text": "x", "deliveryAttempts": 1})
        assert response.status == 503, response.body
        assert response.json["code"] == "RecipientsDeferred"
        assert response.json["details"]["temporary"] is True
        assert [e.event for e in sent_events.events()] == ["messageDeliveryError", "messageFailed"]

    def test_only_the_deferred_recipient_is_retried(self, api, dovecot, postfix, account, deferred_recipient,
                                                  make_mail_user, fast_retries):
        # Given one recipient accepted now and one deferred
        other = make_mail_user()
        response = api.post(f"/v1/account/{account}/submit",
                            {"to": [other.email, deferred_recipient.email], "subject": "split", "text": "x"})
        assert response.status == 200, response.body
        answer = response.json
        assert answer["accepted"] == [other.email] and deferred_recipient.email in answer["deferred"]

        # When the deferral ends and the outbox retries
        postfix.defer_recipients([])
        run_outbox_until(lambda: outbox_entry(api, answer["queueId"])["state"] == "sent")

        # Then each recipient has the message exactly once
        for user in (other, deferred_recipient):
            assert len(Mailbox(dovecot, user).wait_for(answer["messageId"])) == 1


class TestSchedule:
    def test_send_at_waits_then_sends(self, api, dovecot, account, make_mail_user):
        recipient = make_mail_user()
        send_at = datetime.now(UTC) + timedelta(seconds=2)
        response = api.post(f"/v1/account/{account}/submit",
                            {"to": recipient.email, "subject": "later", "text": "x", "sendAt": send_at.isoformat()})
        assert response.status == 202, response.body
        queue_id = response.json["queueId"]
        assert datetime.fromisoformat(response.json["sendAt"]) == send_at
        entry = outbox_entry(api, queue_id)
        assert entry["state"] == "queued" and entry["attemptsMade"] == 0
        assert Mailbox(dovecot, recipient).uids("INBOX", ["ALL"]) == []

        run_outbox_until(lambda: outbox_entry(api, queue_id)["state"] == "sent")

        _, received = Mailbox(dovecot, recipient).received(response.json["messageId"])
        assert received["Subject"] == "later"
        assert datetime.now(UTC) >= send_at

    def test_a_scheduled_send_can_be_cancelled_once(self, api, account, make_mail_user):
        send_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        response = api.post(f"/v1/account/{account}/submit",
                            {"to": make_mail_user().email, "text": "x", "sendAt": send_at})
        queue_id = response.json["queueId"]

        assert api.delete(f"/v1/outbox/{queue_id}").json == {"deleted": True}
        assert outbox_entry(api, queue_id)["state"] == "cancelled"
        again = api.delete(f"/v1/outbox/{queue_id}")
        assert again.status == 409 and again.json["code"] == "OutboxEntryNotCancellable"
        assert outbox_service.process_message(queue_id) == "cancelled"

    def test_send_at_too_far_ahead_is_refused(self, api, account):
        send_at = (datetime.now(UTC) + timedelta(days=31)).isoformat()
        response = api.post(f"/v1/account/{account}/submit", {"to": "a@example.com", "text": "x", "sendAt": send_at})
        assert response.status == 422 and "sendAt" in response.json["details"]


class TestOutboxApi:
    def test_listing_filters_by_account_and_bound_tokens_see_only_their_own(self, api, dovecot, postfix, account,
                                                                            make_mail_user):
        send_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        queue_id = api.post(f"/v1/account/{account}/submit",
                            {"to": make_mail_user().email, "text": "x", "sendAt": send_at}).json["queueId"]

        listed = api.get(f"/v1/outbox?account={account}").json
        assert [m["queueId"] for m in listed["messages"]] == [queue_id]
        assert listed["total"] == 1 and listed["messages"][0]["sendAt"]

        other_account = register_sender(api, dovecot, postfix, make_mail_user())
        issued = api.post("/v1/tokens", {"description": "other", "scopes": ["api"], "account": other_account})
        assert issued.status == 200, issued.body
        other_token = issued.json["token"]
        assert api.get(f"/v1/outbox/{queue_id}", token=other_token).status == 404
        assert api.get(f"/v1/outbox?account={account}", token=other_token).json["messages"] == []
        assert api.delete(f"/v1/outbox/{queue_id}", token=other_token).status == 404

    def test_unknown_queue_id_is_404(self, api):
        response = api.get("/v1/outbox/0123456789abcdef01234567")
        assert response.status == 404 and response.json["code"] == "OutboxEntryNotFound"
