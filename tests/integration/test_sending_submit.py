"""POST /submit against the real Postfix delivering into the real Dovecot: what arrives, what
is kept in Sent, and what the API answers."""

from __future__ import annotations

import os
import re

import pytest

from chalicelib.smtp.pool import reset_pool
from tests.integration.mail_api_support import register_account, wait_until
from tests.support.sending import (
    Mailbox,
    attachments_of,
    b64,
    register_sender,
)

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + os.urandom(64)


@pytest.fixture
def sender(make_mail_user):
    return make_mail_user()


@pytest.fixture
def recipient(make_mail_user):
    return make_mail_user()


@pytest.fixture
def account(api, dovecot, postfix, sender):
    return register_sender(api, dovecot, postfix, sender, name="Zoë Ümlaut")


class TestDelivery:
    def test_message_arrives_with_headers_bodies_attachments_and_a_byte_identical_sent_copy(
            self, api, dovecot, account, sender, recipient, sent_events):
        # Given a message with a non-ASCII subject and names, both bodies, an inline image and a file
        document = os.urandom(70_000) + b"\r\n\x00 trailing bytes \r"
        response = api.post(f"/v1/account/{account}/submit", {
            "to": [{"name": "Jürgen Ärger", "address": recipient.email}],
            "subject": "Grüße aus Köln – ✓",
            "text": "Hallo Jürgen,\nanbei der Bericht.\n",
            "html": '<p>Hallo <b>Jürgen</b>,</p><img src="cid:logo@test">',
            "attachments": [
                {"filename": "Bericht März.pdf", "content": b64(document), "contentType": "application/pdf"},
                {"filename": "logo.png", "content": b64(PNG), "cid": "logo@test"},
            ],
            "headers": {"X-Campaign": "spring"},
        })

        # Then the server's reply is returned and the message is in the recipient's INBOX
        assert response.status == 200, response.body
        answer = response.json
        assert answer["response"].startswith("250 ")
        assert answer["accepted"] == [recipient.email]
        raw, received = Mailbox(dovecot, recipient).received(answer["messageId"])
        assert received["Subject"] == "Grüße aus Köln – ✓"
        assert received["From"].addresses[0].display_name == "Zoë Ümlaut"
        assert received["From"].addresses[0].addr_spec == sender.email
        assert received["To"].addresses[0].display_name == "Jürgen Ärger"
        assert received["Message-ID"] == answer["messageId"]
        assert received["Date"] and received["X-Campaign"] == "spring"
        assert b"=?utf-8?" in raw.split(b"\r\n\r\n", 1)[0]  # RFC 2047, not raw 8-bit headers
        body = received.get_body(("plain",))
        assert body.get_content().replace("\r\n", "\n") == "Hallo Jürgen,\nanbei der Bericht.\n"
        html = received.get_body(("html",))
        assert "<b>Jürgen</b>" in html.get_content()
        related = [part for part in received.walk() if part["Content-ID"] == "<logo@test>"]
        assert related and related[0].get_payload(decode=True) == PNG
        assert attachments_of(received)["Bericht März.pdf"] == document

        # And the Sent folder holds exactly the bytes that went out, marked \Seen
        sent = answer["sentMessage"]
        assert sent["path"] == "Sent" and sent["uid"] > 0 and sent["id"]
        sender_box = Mailbox(dovecot, sender)
        sent_raw = sender_box.raw(sent["uid"], "Sent")
        assert raw.endswith(sent_raw)  # the recipient's copy only gains trace headers on top
        assert "\\Seen" in sender_box.flags(sent["uid"], "Sent")

        # And a messageSent event says so
        [event] = sent_events.events("messageSent")
        assert event.account == account
        assert event.data["messageId"] == answer["messageId"]
        assert event.data["queueId"] == answer["queueId"]
        assert event.data["envelope"] == {"from": sender.email, "to": [recipient.email]}

    def test_html_only_gets_a_generated_plain_text_part(self, api, dovecot, account, recipient):
        response = api.post(f"/v1/account/{account}/submit", {
            "to": recipient.email, "subject": "html only",
            "html": "<h1>Title</h1><p>First paragraph with a <a href='https://example.com/x'>link</a>.</p>"})
        assert response.status == 200, response.body
        _, received = Mailbox(dovecot, recipient).received(response.json["messageId"])
        plain = received.get_body(("plain",)).get_content()
        assert "Title" in plain and "First paragraph" in plain and "<p>" not in plain
        assert received.get_body(("html",)) is not None

    def test_bcc_is_delivered_but_not_shown_and_kept_in_the_sent_copy(
            self, api, dovecot, account, recipient, make_mail_user, sender):
        # Given a message with a Bcc recipient
        hidden = make_mail_user()
        response = api.post(f"/v1/account/{account}/submit", {
            "to": recipient.email, "bcc": [f"Hidden One <{hidden.email}>"], "subject": "bcc", "text": "x"})
        assert response.status == 200, response.body
        message_id = response.json["messageId"]

        # Then both got it, neither sees a Bcc header
        for user in (recipient, hidden):
            raw, received = Mailbox(dovecot, user).received(message_id)
            assert received["Bcc"] is None and hidden.email.encode() not in raw.split(b"\r\n\r\n")[0].split(
                b"Delivered-To")[-1].split(b"\r\n", 1)[-1]
        # And the sender's Sent copy keeps the Bcc line in front of the sent bytes
        sent_raw = Mailbox(dovecot, sender).raw(response.json["sentMessage"]["uid"], "Sent")
        assert sent_raw.startswith(b"Bcc: Hidden One <" + hidden.email.encode() + b">\r\n")
        recipient_raw = Mailbox(dovecot, recipient).raw(Mailbox(dovecot, recipient).wait_for(message_id)[0])
        assert recipient_raw.endswith(sent_raw.split(b"\r\n", 1)[1])

    def test_copy_false_keeps_nothing_in_sent(self, api, dovecot, account, recipient, sender):
        response = api.post(f"/v1/account/{account}/submit",
                            {"to": recipient.email, "subject": "no copy", "text": "x", "copy": False})
        assert response.status == 200, response.body
        assert "sentMessage" not in response.json
        Mailbox(dovecot, recipient).wait_for(response.json["messageId"])
        assert Mailbox(dovecot, sender).uids("Sent", ["HEADER", "Message-ID", response.json["messageId"]]) == []

    def test_implicit_tls_submission_and_a_warm_session_reused(self, api, dovecot, postfix, make_mail_user,
                                                               recipient):
        # Given an account submitting over implicit TLS (port 465 style)
        account = register_sender(api, dovecot, postfix, make_mail_user(), smtp_secure=True)
        reused_sessions = re.compile(r"disconnect from \S+ ehlo=1 auth=1 mail=2 rcpt=2 data=2 rset=1 quit=1")
        before = len(reused_sessions.findall(postfix.log_text()))

        # When it sends twice in a row
        ids = []
        for n in range(2):
            response = api.post(f"/v1/account/{account}/submit",
                                {"to": recipient.email, "subject": f"tls {n}", "text": "x", "copy": False})
            assert response.status == 200, response.body
            ids.append(response.json["messageId"])

        # Then both arrive, and they went through one session (RSET between them), which
        # Postfix reports when the pool closes it
        for message_id in ids:
            Mailbox(dovecot, recipient).wait_for(message_id)
        reset_pool()
        wait_until(lambda: len(reused_sessions.findall(postfix.log_text())) == before + 1,
                   what="one SMTP session carrying both messages")

    def test_dry_run_returns_the_mime_and_sends_nothing(self, api, dovecot, account, recipient, sent_events):
        response = api.post(f"/v1/account/{account}/submit",
                            {"to": recipient.email, "subject": "Dry ✓", "text": "draft body", "dryRun": True})
        assert response.status == 200, response.body
        answer = response.json
        assert "Subject: =?utf-8?q?Dry_=E2=9C=93?=" in answer["raw"]
        assert f"Message-ID: {answer['messageId']}" in answer["raw"]
        assert answer["envelope"] == {"from": answer["envelope"]["from"], "to": [recipient.email]}
        assert Mailbox(dovecot, recipient).uids("INBOX", ["HEADER", "Message-ID", answer["messageId"]]) == []
        assert sent_events.events() == []


class TestFailures:
    def test_unknown_recipient_fails_permanently_with_message_failed(self, api, account, sent_events):
        response = api.post(f"/v1/account/{account}/submit",
                            {"to": "nobody-here@example.test", "subject": "x", "text": "x"})
        assert response.status == 422, response.body
        body = response.json
        assert body["code"] == "RecipientsRejected"
        assert body["details"]["serverResponse"].startswith("550 ")
        assert body["details"]["temporary"] is False
        [failed] = sent_events.events("messageFailed")
        assert failed.data["queueId"] == body["details"]["queueId"]
        assert failed.data["code"] == "RecipientsRejected"
        assert [e.event for e in sent_events.events()] == ["messageDeliveryError", "messageFailed"]

    def test_one_unknown_recipient_does_not_stop_the_others(self, api, dovecot, account, recipient):
        response = api.post(f"/v1/account/{account}/submit",
                            {"to": [recipient.email, "ghost@example.test"], "subject": "partial", "text": "x"})
        assert response.status == 200, response.body
        assert response.json["accepted"] == [recipient.email]
        assert response.json["rejected"]["ghost@example.test"].startswith("550 ")
        Mailbox(dovecot, recipient).wait_for(response.json["messageId"])

    def test_utf8_local_part_is_refused_clearly_when_the_server_lacks_smtputf8(self, api, account):
        # Postfix here runs with smtputf8_enable = no (Dovecot 2.3's LMTP cannot take it).
        response = api.post(f"/v1/account/{account}/submit",
                            {"to": "jörg@bücher.example", "subject": "x", "text": "x"})
        assert response.status == 422, response.body
        assert response.json["code"] == "SMTPUTF8Unsupported"
        assert "SMTPUTF8" in response.json["error"]

    def test_an_account_without_smtp_settings_cannot_send(self, api, dovecot, make_mail_user, sent_events):
        imap_only = register_account(api, dovecot, make_mail_user())
        response = api.post(f"/v1/account/{imap_only}/submit", {"to": "a@example.com", "text": "x"})
        assert response.status == 409 and response.json["code"] == "SmtpNotConfigured"
        assert sent_events.events() == []

    def test_idn_domain_goes_out_as_its_a_label(self, api, account):
        response = api.post(f"/v1/account/{account}/submit",
                            {"to": "anna@bücher.example", "subject": "x", "text": "x", "dryRun": True})
        assert response.status == 200, response.body
        assert response.json["envelope"]["to"] == ["anna@xn--bcher-kva.example"]
        assert "To: anna@xn--bcher-kva.example" in response.json["raw"]


class TestValidation:
    # 400: the body contradicts the document (range, unknown field); 422: a rule the document
    # cannot carry (address and header syntax, base64, one line, a time zone, a recipient at all).
    @pytest.mark.parametrize(("body", "field", "status"), [
        ({"subject": "x", "text": "x"}, "to", 422),
        ({"to": "not-an-address", "text": "x"}, "to.0.address", 422),
        ({"to": [{"name": "A", "address": "a@@example.com"}], "text": "x"}, "to.0.address", 422),
        ({"to": "a@example.com", "cc": ["b@example.com", "broken@"], "text": "x"}, "cc.1.address", 422),
        ({"to": "a@example.com", "attachments": [{"filename": "a", "content": "%%% not base64"}]},
         "attachments.0.content", 422),
        ({"to": "a@example.com", "subject": "two\nlines"}, "subject", 422),
        ({"to": "a@example.com", "headers": {"Content-Type": "text/plain"}}, "headers.Content-Type", 422),
        ({"to": "a@example.com", "headers": {"Bad Name": "x"}}, "headers.Bad Name", 422),
        ({"to": "a@example.com", "sendAt": "2026-01-01T00:00:00"}, "sendAt", 422),
        ({"to": "a@example.com", "deliveryAttempts": 0}, "deliveryAttempts", 400),
        ({"to": "a@example.com", "unknownField": 1}, "unknownField", 400),
    ])
    def test_bad_input_is_refused_naming_the_field(self, api, account, body, field, status):
        response = api.post(f"/v1/account/{account}/submit", body)
        assert response.status == status, response.body
        assert field in response.json["details"], response.json

    def test_example_and_test_domains_are_valid(self, api, account):
        response = api.post(f"/v1/account/{account}/submit", {
            "to": ["a@example.com", "b@host.test", "C <c@example.invalid>"], "text": "x", "dryRun": True})
        assert response.status == 200, response.body

    def test_a_message_over_the_size_limit_names_the_largest_part(self, api, account, sending_settings):
        sending_settings(IMAPLESS_SEND_MAX_MESSAGE_BYTES="20000")
        response = api.post(f"/v1/account/{account}/submit", {
            "to": "a@example.com", "text": "small",
            "attachments": [{"filename": "a.bin", "content": b64(b"x" * 100)},
                            {"filename": "big.bin", "content": b64(os.urandom(30_000))}]})
        assert response.status == 422, response.body
        assert response.json["code"] == "MessageTooLarge"
        assert "attachments.1.content" in response.json["details"]

    def test_unknown_account_is_404(self, api):
        response = api.post("/v1/account/no-such-account/submit", {"to": "a@example.com", "text": "x"})
        assert response.status == 404
