"""Idempotency-Key on POST /submit: a retried request answers from the first one, never sends twice."""

from __future__ import annotations

import random
import threading

import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from botocore.exceptions import ClientError

from chalicelib.incarnations import scoped
from chalicelib.services import after_send, send_attempts, sending
from chalicelib.store import accounts as account_store
from chalicelib.store.idempotency_records import AnswerPartItem, partition
from tests.support.sending import Mailbox, b64, register_sender


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


# -- large answers and a result store that fails after the side effect --------------------------

ATTACHMENT_BYTES = 400_000  # random, so compression cannot bring the answer under DynamoDB's 400 KB item limit


def with_large_attachment(body: dict) -> dict:
    content = b64(random.Random(7).randbytes(ATTACHMENT_BYTES))
    return {**body, "attachments": [{"filename": "large.bin", "content": content}]}


def throttled(*args, **kwargs):
    raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                      "UpdateItem")


def test_a_large_dry_run_answer_is_stored_and_replayed(api, account, make_mail_user):
    # Given a dry run whose answer (the raw message) is larger than a DynamoDB item may be
    body = with_large_attachment({"to": make_mail_user().email, "subject": "big", "text": "x", "dryRun": True})
    first = submit(api, account, body, "large-dry-run")
    assert first.status == 200, first.body
    assert len(first.json["raw"]) > ATTACHMENT_BYTES

    # When the client retries it
    second = submit(api, account, body, "large-dry-run")

    # Then it gets the very same answer (the same Message-ID and bytes), marked as replayed
    assert second.status == 200, second.body
    assert second.json == first.json
    assert second.headers["Idempotent-Replayed"] == "true"


def test_a_large_send_is_answered_and_a_retry_sends_nothing(api, dovecot, account, make_mail_user):
    # Given a message with a ~400 KB attachment sent with a key
    recipient = make_mail_user()
    body = with_large_attachment({"to": recipient.email, "subject": "big", "text": "x"})
    first = submit(api, account, body, "large-send")
    assert first.status == 200, first.body

    # When the client retries it
    second = submit(api, account, body, "large-send")

    # Then the answer is replayed and the recipient has exactly one message
    assert second.status == 200 and second.json == first.json
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len(Mailbox(dovecot, recipient).wait_for(first.json["messageId"])) == 1
    assert len(Mailbox(dovecot, recipient).uids("INBOX", ["ALL"])) == 1


def is_acceptance(data_record) -> bool:
    """The write made when the SMTP server took the message (its answer carries the warning)."""
    return sending.STEPS_UNKNOWN_WARNING in (data_record.response_data or "")


@pytest.mark.parametrize("failing", ["the answer", "the acceptance"])
def test_a_result_save_failing_once_after_sending_answers_the_send_and_keeps_the_key(
        api, dovecot, account, make_mail_user, monkeypatch, failing):
    # Given a store whose first write of the answer (or of the acceptance) fails (throttled)
    real_update = DynamoDBPersistenceLayer._update_record
    failed = []

    def update_failing_once(self, data_record):
        if not failed and is_acceptance(data_record) == (failing == "the acceptance"):
            failed.append(data_record.status)
            throttled()
        return real_update(self, data_record)

    monkeypatch.setattr(DynamoDBPersistenceLayer, "_update_record", update_failing_once)
    recipient = make_mail_user()
    body = {"to": recipient.email, "subject": "sent", "text": "x"}

    # When the client sends with a key, then retries
    first = submit(api, account, body, "save-fails-once")
    second = submit(api, account, body, "save-fails-once")

    # Then the send is answered as a send, the retry replays it, and one message arrived
    assert failed
    assert first.status == 200, first.body
    assert first.json["response"] and first.json["accepted"] == [recipient.email]
    assert first.json["sentMessage"] and "warnings" not in first.json  # the whole answer, steps done
    assert second.status == 200 and second.json == first.json
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len(Mailbox(dovecot, recipient).wait_for(first.json["messageId"])) == 1
    assert len(Mailbox(dovecot, recipient).uids("INBOX", ["ALL"])) == 1


def test_a_result_store_down_after_sending_answers_the_send_and_a_retry_does_not_resend(
        api, dovecot, account, make_mail_user, monkeypatch):
    # Given a store that accepts the in-progress record, then refuses every write of a result
    monkeypatch.setattr(DynamoDBPersistenceLayer, "_update_record", lambda self, data_record: throttled())
    recipient = make_mail_user()
    body = {"to": recipient.email, "subject": "sent", "text": "x"}

    # When the client sends with a key, then retries
    first = submit(api, account, body, "save-always-fails")
    second = submit(api, account, body, "save-always-fails")

    # Then the send is answered as a send; the retry is told the key is busy, and nothing is sent twice
    assert first.status == 200, first.body
    assert first.json["accepted"] == [recipient.email]
    assert second.status == 409 and second.json["code"] == "IdempotencyKeyInUse"
    assert len(Mailbox(dovecot, recipient).wait_for(first.json["messageId"])) == 1
    assert len(Mailbox(dovecot, recipient).uids("INBOX", ["ALL"])) == 1


def test_a_dry_run_whose_answer_cannot_be_stored_is_answered_and_a_retry_builds_it_again(
        api, account, make_mail_user, monkeypatch):
    # Given a store that refuses every write of a result
    monkeypatch.setattr(DynamoDBPersistenceLayer, "_update_record", lambda self, data_record: throttled())
    body = with_large_attachment({"to": make_mail_user().email, "subject": "big", "text": "x", "dryRun": True})

    # When a dry run is sent with a key, then retried
    first = submit(api, account, body, "dry-run-unstored")
    second = submit(api, account, body, "dry-run-unstored")

    # Then both are answered: a dry run sends nothing, so its key is released rather than kept busy
    assert first.status == 200, first.body
    assert second.status == 200, second.body
    assert "Idempotent-Replayed" not in second.headers


def test_an_error_answer_is_kept_when_its_record_cannot_be_removed(api, account, monkeypatch):
    # Given a store that cannot delete the in-progress record of a request that failed
    monkeypatch.setattr(DynamoDBPersistenceLayer, "_delete_record", lambda self, data_record: throttled())

    # When a send is refused for good
    refused = submit(api, account, {"to": "nobody-at-all@example.test", "text": "x"}, "refused-key")

    # Then the client gets the refusal, not a claim that the store failed
    assert refused.status == 422 and refused.json["code"] == "RecipientsRejected"


def scope_of(account: str) -> str:
    return scoped(account, account_store.get_account(account).incarnation)


def answer_parts_in(scope: str) -> list[str]:
    """The sort keys of the answer parts stored in ``scope``'s partition."""
    return [item.sk for item in AnswerPartItem.query(partition(scope)) if item.sk.startswith("answer#")]


def test_a_replay_whose_parts_are_gone_says_retry_not_nothing_was_done(api, account, make_mail_user):
    # Given a large dry run answered under a key, whose parts have since disappeared
    body = with_large_attachment({"to": make_mail_user().email, "text": "x", "dryRun": True})
    assert submit(api, account, body, "parts-gone").status == 200
    scope = scope_of(account)
    for sk in answer_parts_in(scope):
        AnswerPartItem(partition(scope), sk).delete()

    # When the client retries
    again = submit(api, account, body, "parts-gone")

    # Then it is told to retry, never that nothing was done
    assert again.status == 503 and again.json["code"] == "IdempotencyStoreUnavailable"
    assert "nothing was done" not in again.json["error"]


def test_deleting_the_account_removes_the_parts_of_its_large_answers(api, account, make_mail_user):
    body = with_large_attachment({"to": make_mail_user().email, "text": "x", "dryRun": True})
    assert submit(api, account, body, "parts-of-deleted").status == 200
    scope = scope_of(account)
    assert len(answer_parts_in(scope)) >= 2

    assert api.delete(f"/v1/account/{account}").status == 200

    assert list(AnswerPartItem.query(partition(scope))) == []


# -- the acceptance, recorded before the steps after sending ------------------------------------


def test_a_retry_while_the_steps_after_sending_run_gets_the_sent_answer(api, account, make_mail_user,
                                                                       monkeypatch):
    # Given a first request whose message the SMTP server took, held in its Sent copy step
    entered, release = threading.Event(), threading.Event()
    real_steps = after_send.run_steps

    def slow_steps(*args, **kwargs):
        entered.set()
        release.wait(10)
        return real_steps(*args, **kwargs)

    monkeypatch.setattr(after_send, "run_steps", slow_steps)
    recipient = make_mail_user()
    body = {"to": recipient.email, "text": "x"}
    answers = {}
    first = threading.Thread(target=lambda: answers.setdefault("first", submit(api, account, body, "steps-key")))
    first.start()
    try:
        assert entered.wait(10)
        # When the client retries meanwhile
        second = submit(api, account, body, "steps-key")
    finally:
        release.set()
        first.join(20)

    # Then the retry learns the message was sent (not "busy"), with a warning that the steps may not
    # have completed; the first request ends with its full answer, which later retries get
    assert second.status == 200, second.body
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json["accepted"] == [recipient.email]
    assert second.json["warnings"] == [sending.STEPS_UNKNOWN_WARNING]
    full = answers["first"]
    assert full.status == 200 and full.json["messageId"] == second.json["messageId"]
    assert "warnings" not in full.json and full.json["sentMessage"]
    assert submit(api, account, body, "steps-key").json == full.json


def test_steps_after_sending_that_raise_answer_the_send_and_a_retry_does_not_resend(
        api, dovecot, account, make_mail_user, monkeypatch):
    # Given steps after sending that fail in a way nobody foresaw
    def broken_steps(*args, **kwargs):
        raise RuntimeError("unforeseen")

    monkeypatch.setattr(after_send, "run_steps", broken_steps)
    recipient = make_mail_user()
    body = {"to": recipient.email, "text": "x"}

    # When the client sends with a key, then retries
    first = submit(api, account, body, "broken-steps")
    second = submit(api, account, body, "broken-steps")

    # Then both are told the message was sent (the steps may not have run), and one message arrived
    assert first.status == 200, first.body
    assert first.json["accepted"] == [recipient.email]
    assert first.json["warnings"] == [sending.STEPS_UNKNOWN_WARNING]
    assert second.status == 200 and second.json == first.json
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len(Mailbox(dovecot, recipient).wait_for(first.json["messageId"])) == 1
    assert len(Mailbox(dovecot, recipient).uids("INBOX", ["ALL"])) == 1
