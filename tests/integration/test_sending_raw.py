"""POST /submit with ``raw`` (EmailEngine's RFC822Raw) against the real Postfix and Dovecot: the
caller's bytes go out as they are, the Sent copy is those bytes, the envelope comes from the
headers or from ``envelope``; the outbox, Idempotency-Key and the size limit apply as to any send."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.sending import Mailbox, b64, register_sender, run_outbox_until


@pytest.fixture
def sender(make_mail_user):
    return make_mail_user()


@pytest.fixture
def account(api, dovecot, postfix, sender):
    return register_sender(api, dovecot, postfix, sender)


def own_message(sender: str, to: str, *, subject: str = "raw", extra: str = "", message_id: str | None = None,
                date: bool = True) -> bytes:
    """A complete message as a caller builds it, with an 8-bit-free multipart body."""
    message_id = message_id or f"<raw-{secrets.token_hex(6)}@example.test>"
    headers = [f"From: Raw Sender <{sender}>", f"To: {to}", extra, f"Subject: {subject}",
               f"Message-ID: {message_id}" if message_id != "-" else "",
               "Date: Tue, 03 Nov 2026 10:00:00 +0000" if date else "",
               "MIME-Version: 1.0", 'Content-Type: multipart/alternative; boundary="b1"', "X-Own: kept as is"]
    body = ["", "--b1", "Content-Type: text/plain; charset=us-ascii", "", "Plain  body,   spacing kept.  ",
            "--b1", "Content-Type: text/html; charset=us-ascii", "", "<p>HTML body</p>", "--b1--", ""]
    return "\r\n".join([line for line in headers if line] + body).encode("ascii")


class TestRawDelivery:
    def test_raw_base64_goes_out_unchanged_and_the_sent_copy_is_byte_identical(
            self, api, dovecot, account, sender, recipient_user):
        # Given a complete message with its own Message-ID and Date
        raw = own_message(sender.email, recipient_user.email)

        # When it is submitted as base64
        response = api.post(f"/v1/account/{account}/submit", {"raw": b64(raw)})

        # Then it is delivered, its envelope taken from its headers
        assert response.status == 200, response.body
        answer = response.json
        assert answer["envelope"] == {"from": sender.email, "to": [recipient_user.email]}
        delivered, _ = Mailbox(dovecot, recipient_user).received(answer["messageId"])
        assert delivered.endswith(raw)  # only trace headers on top

        # And the Sent copy is exactly the bytes the caller gave
        sent_raw = Mailbox(dovecot, sender).raw(answer["sentMessage"]["uid"], "Sent")
        assert sent_raw == raw

    def test_raw_text_gets_message_id_and_date_and_its_bcc_is_delivered_but_not_shown(
            self, api, dovecot, account, sender, recipient_user, make_mail_user):
        # Given a message as text, with a Bcc line and neither Message-ID nor Date
        hidden = make_mail_user()
        raw = own_message(sender.email, recipient_user.email, extra=f"Bcc: {hidden.email}", message_id="-",
                          date=False)

        # When it is submitted as the text itself
        response = api.post(f"/v1/account/{account}/submit", {"raw": raw.decode("ascii")})

        # Then both recipients get it, with a Message-ID and a Date, and neither sees the Bcc line
        assert response.status == 200, response.body
        message_id = response.json["messageId"]
        assert sorted(response.json["envelope"]["to"]) == sorted([recipient_user.email, hidden.email])
        for user in (recipient_user, hidden):
            delivered, received = Mailbox(dovecot, user).received(message_id)
            assert received["Bcc"] is None and received["Date"]
            assert b"X-Own: kept as is\r\n" in delivered
        # And the Sent copy is the sent bytes with the Bcc line in front
        sent_raw = Mailbox(dovecot, sender).raw(response.json["sentMessage"]["uid"], "Sent")
        assert sent_raw.startswith(f"Bcc: {hidden.email}\r\n".encode())
        delivered, _ = Mailbox(dovecot, recipient_user).received(message_id)
        assert delivered.endswith(sent_raw.split(b"\r\n", 1)[1])

    def test_the_envelope_given_replaces_the_headers(self, api, dovecot, account, sender, recipient_user,
                                                     make_mail_user):
        # Given a message whose To names someone else, and an envelope naming the real recipient
        shown = make_mail_user()
        raw = own_message(sender.email, shown.email)
        response = api.post(f"/v1/account/{account}/submit",
                            {"raw": b64(raw), "envelope": {"from": sender.email, "to": recipient_user.email}})

        # Then only the envelope's recipient gets it, with the To line as written
        assert response.status == 200, response.body
        assert response.json["envelope"] == {"from": sender.email, "to": [recipient_user.email]}
        _, received = Mailbox(dovecot, recipient_user).received(response.json["messageId"])
        assert received["To"] == shown.email
        assert Mailbox(dovecot, shown).uids("INBOX", ["ALL"]) == []

    def test_an_envelope_also_steers_a_built_message(self, api, dovecot, account, sender, recipient_user,
                                                     make_mail_user):
        shown = make_mail_user()
        response = api.post(f"/v1/account/{account}/submit", {
            "to": shown.email, "subject": "built", "text": "x", "envelope": {"from": "", "to": [recipient_user.email]}})
        assert response.status == 200, response.body
        assert response.json["envelope"] == {"from": "", "to": [recipient_user.email]}
        _, received = Mailbox(dovecot, recipient_user).received(response.json["messageId"])
        assert received["To"] == shown.email and received["Return-Path"] == "<>"
        assert Mailbox(dovecot, shown).uids("INBOX", ["ALL"]) == []

    def test_a_scheduled_raw_message_goes_out_through_the_outbox_unchanged(
            self, api, dovecot, account, sender, recipient_user):
        raw = own_message(sender.email, recipient_user.email, subject="raw later")
        send_at = datetime.now(UTC) + timedelta(seconds=1)
        response = api.post(f"/v1/account/{account}/submit", {"raw": b64(raw), "sendAt": send_at.isoformat()})
        assert response.status == 202, response.body
        queue_id = response.json["queueId"]

        run_outbox_until(lambda: api.get(f"/v1/outbox/{queue_id}").json["state"] == "sent")

        delivered, _ = Mailbox(dovecot, recipient_user).received(response.json["messageId"])
        assert delivered.endswith(raw)
        [sent_uid] = Mailbox(dovecot, sender).uids("Sent", ["HEADER", "Message-ID", response.json["messageId"]])
        assert Mailbox(dovecot, sender).raw(sent_uid, "Sent") == raw

    def test_a_retried_raw_submit_with_the_same_key_sends_once(self, api, dovecot, account, sender,
                                                               recipient_user):
        body = {"raw": b64(own_message(sender.email, recipient_user.email))}
        headers = {"Idempotency-Key": f"raw-{secrets.token_hex(4)}"}
        first = api.post(f"/v1/account/{account}/submit", body, headers=headers)
        second = api.post(f"/v1/account/{account}/submit", body, headers=headers)
        assert first.status == second.status == 200, first.body
        assert second.json == first.json and second.headers["Idempotent-Replayed"] == "true"
        assert len(Mailbox(dovecot, recipient_user).wait_for(first.json["messageId"])) == 1
        assert len(Mailbox(dovecot, recipient_user).uids("INBOX", ["ALL"])) == 1


class TestRawRefused:
    @pytest.mark.parametrize("extra", [{"subject": "x"}, {"html": "<p>x</p>"}, {"text": "x"},
                                       {"attachments": []}, {"to": "a@example.com"}, {"headers": {"X-A": "1"}}])
    def test_raw_with_a_field_that_builds_a_message_is_a_400(self, api, account, sender, extra):
        raw = own_message(sender.email, "someone@example.com")
        response = api.post(f"/v1/account/{account}/submit", {"raw": b64(raw), **extra})
        assert response.status == 400, response.body
        assert response.json["code"] == "RawWithMessageFields"
        assert list(response.json["details"]) == list(extra)

    def test_a_raw_message_over_the_size_limit_is_refused(self, api, account, sender, sending_settings):
        sending_settings(IMAPLESS_SEND_MAX_MESSAGE_BYTES="2000")
        raw = own_message(sender.email, "someone@example.com") + b"x" * 3000 + b"\r\n"
        response = api.post(f"/v1/account/{account}/submit", {"raw": b64(raw)})
        assert response.status == 422 and response.json["code"] == "MessageTooLarge"
        assert "raw" in response.json["details"]

    def test_raw_without_a_from_line_names_the_field(self, api, account):
        response = api.post(f"/v1/account/{account}/submit", {"raw": "To: a@example.com\r\nSubject: x\r\n\r\nx"})
        assert response.status == 422 and "raw.from" in response.json["details"]

    def test_raw_that_is_neither_base64_nor_a_message_is_refused(self, api, account):
        response = api.post(f"/v1/account/{account}/submit", {"raw": "just some words"})
        assert response.status == 422 and "raw" in response.json["details"]


@pytest.fixture
def recipient_user(make_mail_user):
    return make_mail_user()
