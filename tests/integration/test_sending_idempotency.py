"""Idempotency-Key on POST /submit: a retried request answers from the first one, never sends twice."""

from __future__ import annotations

import threading

import pytest

from chalicelib.services import send_attempts
from tests.support.sending import Mailbox, register_sender


@pytest.fixture
def account(api, dovecot, postfix, make_mail_user):
    return register_sender(api, dovecot, postfix, make_mail_user())


def submit(api, account: str, body: dict, key: str | None):
    headers = {"Idempotency-Key": key} if key else None
    return api.post(f"/v1/account/{account}/submit", body, headers=headers)


def test_a_retried_request_returns_the_first_answer_and_sends_once(api, dovecot, account, make_mail_user):
    # Given a successful send with a key
    recipient = make_mail_user()
    body = {"to": recipient.email, "subject": "once", "text": "only once"}
    first = submit(api, account, body, "order-1234-confirmation")
    assert first.status == 200, first.body
    assert "Idempotent-Replayed" not in first.headers

    # When the client retries it (its connection dropped before it saw the answer)
    second = submit(api, account, body, "order-1234-confirmation")

    # Then it gets the same answer, marked as replayed, and the recipient has one message
    assert second.status == 200
    assert second.json == first.json
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len(Mailbox(dovecot, recipient).wait_for(first.json["messageId"])) == 1
    assert len(Mailbox(dovecot, recipient).uids("INBOX", ["ALL"])) == 1


def test_the_same_key_with_another_body_is_refused(api, account, make_mail_user):
    recipient = make_mail_user()
    assert submit(api, account, {"to": recipient.email, "text": "a"}, "key-reuse").status == 200
    reused = submit(api, account, {"to": recipient.email, "text": "b"}, "key-reuse")
    assert reused.status == 422 and reused.json["code"] == "IdempotencyKeyReused"


def test_keys_are_scoped_per_account(api, dovecot, postfix, account, make_mail_user):
    other = register_sender(api, dovecot, postfix, make_mail_user())
    recipient = make_mail_user()
    body = {"to": recipient.email, "text": "x"}
    first = submit(api, account, body, "shared-key")
    second = submit(api, other, body, "shared-key")
    assert first.status == second.status == 200
    assert first.json["messageId"] != second.json["messageId"]


def test_a_failed_request_does_not_pin_its_key(api, account, make_mail_user):
    # A permanent failure is an error answer; nothing was sent, so a retry runs again.
    body = {"to": "nobody-at-all@example.test", "text": "x"}
    assert submit(api, account, body, "failing-key").json["code"] == "RecipientsRejected"
    again = submit(api, account, body, "failing-key")
    assert again.json["code"] == "RecipientsRejected" and "Idempotent-Replayed" not in again.headers


def test_a_retry_while_the_first_is_still_sending_is_409(api, account, make_mail_user, monkeypatch):
    # Given a first request held inside its delivery attempt
    entered, release = threading.Event(), threading.Event()
    real_attempt = send_attempts.attempt

    def slow_attempt(job, **kwargs):
        entered.set()
        release.wait(10)
        return real_attempt(job, **kwargs)

    monkeypatch.setattr("chalicelib.services.sending.attempt", slow_attempt)
    body = {"to": make_mail_user().email, "text": "x"}
    answers = {}
    first = threading.Thread(target=lambda: answers.setdefault("first", submit(api, account, body, "busy-key")))
    first.start()
    try:
        assert entered.wait(10)
        # When the client retries meanwhile
        second = submit(api, account, body, "busy-key")
    finally:
        release.set()
        first.join(20)
    # Then the retry is told to come back, and the first completes normally
    assert second.status == 409 and second.json["code"] == "IdempotencyKeyInUse"
    assert answers["first"].status == 200


def test_an_invalid_key_is_a_422(api, account):
    response = submit(api, account, {"to": "a@example.com", "text": "x", "dryRun": True}, "bad key with spaces")
    assert response.status == 422 and "headers.Idempotency-Key" in response.json["details"]
