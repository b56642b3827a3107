"""Replies, forwards and drafts: threading headers and flags checked in the real mailboxes."""

from __future__ import annotations

import email
import os
from email import policy

import pytest

from chalicelib.message_ids import MessageRef, encode_message_id
from tests.support.sending import Mailbox, attachments_of, make_message, register_sender


@pytest.fixture
def me(make_mail_user):
    return make_mail_user()


@pytest.fixture
def account(api, dovecot, postfix, me):
    return register_sender(api, dovecot, postfix, me, name="Me Myself")


@pytest.fixture
def alice(make_mail_user):
    return make_mail_user()


@pytest.fixture
def carol(make_mail_user):
    return make_mail_user()


class TestReply:
    def test_reply_threads_quotes_and_marks_the_original_answered(self, api, dovecot, account, me, alice):
        # Given a message from Alice in my INBOX, itself part of a thread
        raw, original_id = make_message(sender=f"Alice <{alice.email}>", to=me.email, subject="Quarterly plan",
                                        references="<root@example.test> <second@example.test>",
                                        body="Can you review it?\nThanks\n")
        my_box = Mailbox(dovecot, me)
        reference = my_box.append("INBOX", raw)

        # When I reply with the original quoted
        response = api.post(f"/v1/account/{account}/submit", {
            "text": "Looks good.", "reference": {"message": reference, "action": "reply", "inline": True}})

        # Then Alice gets a reply in the same thread
        assert response.status == 200, response.body
        _, received = Mailbox(dovecot, alice).received(response.json["messageId"])
        assert received["Subject"] == "Re: Quarterly plan"
        assert received["In-Reply-To"] == original_id
        assert received["References"].split() == ["<root@example.test>", "<second@example.test>", original_id]
        assert [a.addr_spec for a in received["To"].addresses] == [alice.email]
        text = received.get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert text.startswith("Looks good.\n")
        assert "Alice <" in text and "wrote:\n> Can you review it?\n> Thanks" in text
        # And the original is marked \\Answered; the Sent copy is there
        original_uid = my_box.wait_for(original_id)[0]
        assert "\\Answered" in my_box.flags(original_uid)
        assert response.json["sentMessage"]["path"] == "Sent"

    def test_reply_all_reaches_everyone_but_me_and_keeps_reply_to(self, api, dovecot, account, me, alice, carol,
                                                                 make_mail_user):
        # Given a message from Alice to me and Carol, with Reply-To set to a list address
        team = make_mail_user()
        raw, _ = make_message(sender=f"Alice <{alice.email}>", to=f"Me <{me.email.upper()}>, {carol.email}",
                              cc=team.email, reply_to=alice.email, subject="Re: Lunch?")
        reference = Mailbox(dovecot, me).append("INBOX", raw)

        # When I reply to all
        response = api.post(f"/v1/account/{account}/submit",
                            {"text": "Count me in", "reference": {"message": reference, "action": "reply-all"}})
        assert response.status == 200, response.body
        message_id = response.json["messageId"]

        # Then Alice is in To, Carol and the team in Cc, and I am nowhere
        _, received = Mailbox(dovecot, alice).received(message_id)
        assert received["Subject"] == "Re: Lunch?"  # no second prefix
        assert [a.addr_spec for a in received["To"].addresses] == [alice.email]
        assert sorted(a.addr_spec for a in received["Cc"].addresses) == sorted([carol.email, team.email])
        assert me.email not in received["To"] + received["Cc"]
        Mailbox(dovecot, carol).wait_for(message_id)
        Mailbox(dovecot, team).wait_for(message_id)

    def test_a_stale_or_malformed_reference_is_an_error(self, api, account):
        stale = encode_message_id(MessageRef("INBOX", 1, 999_999))
        response = api.post(f"/v1/account/{account}/submit",
                            {"text": "x", "reference": {"message": stale, "action": "reply"}})
        assert response.status == 404, response.body
        malformed = api.post(f"/v1/account/{account}/submit",
                             {"text": "x", "reference": {"message": "not-an-id", "action": "reply"}})
        assert malformed.status == 422 and malformed.json["code"] == "InvalidMessageId"


class TestForward:
    def test_forward_inline_with_attachments_threads_and_marks_forwarded(self, api, dovecot, account, me, alice,
                                                                        carol):
        # Given a message from Alice with an attachment and an HTML body showing an inline image
        report = os.urandom(40_000)
        raw, original_id = make_message(
            sender=f"Alice <{alice.email}>", to=me.email, subject="Report", body="See the report.\n",
            html='<p>See the <b>report</b>.</p>', attachments=(("report.bin", "application/octet-stream", report),))
        my_box = Mailbox(dovecot, me)
        reference = my_box.append("INBOX", raw)

        # When I forward it to Carol, inline and with its attachments
        response = api.post(f"/v1/account/{account}/submit", {
            "to": carol.email, "text": "FYI", "html": "<p>FYI</p>",
            "reference": {"message": reference, "action": "forward", "inline": True, "forwardAttachments": True}})

        # Then Carol gets "Fwd:" with the original inline and its attachment byte for byte
        assert response.status == 200, response.body
        _, received = Mailbox(dovecot, carol).received(response.json["messageId"])
        assert received["Subject"] == "Fwd: Report"
        assert received["References"].split() == [original_id]
        text = received.get_body(("plain",)).get_content()
        assert text.startswith("FYI") and "Forwarded message" in text and "See the report." in text
        assert "<b>report</b>" in received.get_body(("html",)).get_content()
        assert attachments_of(received) == {"report.bin": report}
        # And the original is marked $Forwarded
        assert "$Forwarded" in my_box.flags(my_box.wait_for(original_id)[0])


class TestDrafts:
    def test_a_saved_draft_is_sent_as_is_removed_from_drafts_and_kept_in_sent(self, api, dovecot, account, me,
                                                                             alice, carol):
        # Given a draft in Drafts with a Bcc recipient, written with bare LF line ends
        raw, draft_message_id = make_message(sender=f"Me <{me.email}>", to=alice.email, subject="Draft ✓",
                                             body="Written earlier.\n")
        raw = raw.replace(b"\r\n", b"\n").replace(b"Subject:", f"Bcc: {carol.email}\nSubject:".encode(), 1)
        my_box = Mailbox(dovecot, me)
        draft = my_box.append("Drafts", raw, flags=(b"\\Draft",))

        # When it is sent
        response = api.post(f"/v1/account/{account}/message/{draft}/submit", {})

        # Then To and Bcc recipients get it, keeping the draft's Message-ID, without the Bcc line
        assert response.status == 200, response.body
        assert response.json["messageId"] == draft_message_id
        for user in (alice, carol):
            _, received = Mailbox(dovecot, user).received(draft_message_id)
            assert received["Subject"] == "Draft ✓" and received["Bcc"] is None
            assert received.get_content().replace("\r\n", "\n") == "Written earlier.\n"
        # And the draft is gone from Drafts, and Sent has the copy with the Bcc line
        assert my_box.uids("Drafts", ["HEADER", "Message-ID", draft_message_id]) == []
        sent_raw = my_box.raw(response.json["sentMessage"]["uid"], "Sent")
        assert sent_raw.startswith(f"Bcc: {carol.email}\r\n".encode())

    def test_a_draft_without_recipients_is_a_422(self, api, dovecot, account, me):
        raw, _ = make_message(sender=me.email, to="", subject="no one")
        draft = Mailbox(dovecot, me).append("Drafts", raw.replace(b"To: \r\n", b""))
        response = api.post(f"/v1/account/{account}/message/{draft}/submit", {"deleteDraft": False})
        assert response.status == 422, response.body
        assert "draft.to" in response.json["details"]


class TestReplyDrafts:
    """POST /message (APPEND) with ``reference`` and ``headers``: a reply or forward saved as a draft,
    built by the same code as a sent one."""

    def upload(self, api, account, body: dict) -> dict:
        response = api.post(f"/v1/account/{account}/message", {"path": "Drafts", **body})
        assert response.status == 200, response.body
        return response.json

    def test_a_reply_draft_threads_addresses_and_quotes_like_a_sent_reply(self, api, dovecot, account, me, alice):
        # Given a message from Alice in my INBOX, part of a thread
        raw, original_id = make_message(sender=f"Alice <{alice.email}>", to=me.email, subject="Budget",
                                        references="<root@example.test>", body="Numbers attached?\n")
        my_box = Mailbox(dovecot, me)
        reference = my_box.append("INBOX", raw)

        # When a reply with the original quoted and an extra header is saved as a draft
        uploaded = self.upload(api, account, {
            "from": {"address": me.email}, "text": "Here they are.", "headers": {"X-Draft-Origin": "crm"},
            "reference": {"message": reference, "action": "reply", "inline": True}})

        # Then the draft is the reply a submit would send: thread, subject, recipient, quote, header
        draft = my_box.raw(uploaded["uid"], "Drafts")
        parsed = email.message_from_bytes(draft, policy=policy.default)
        assert parsed["Subject"] == "Re: Budget"
        assert parsed["In-Reply-To"] == original_id
        assert parsed["References"].split() == ["<root@example.test>", original_id]
        assert [a.addr_spec for a in parsed["To"].addresses] == [alice.email]
        assert parsed["X-Draft-Origin"] == "crm"
        text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert text.startswith("Here they are.\n") and "> Numbers attached?" in text
        # And the original is not flagged: nothing was sent
        assert "\\Answered" not in my_box.flags(my_box.wait_for(original_id)[0])

    def test_a_forward_draft_keeps_the_given_subject_prefixed_and_the_attachments(self, api, dovecot, account, me,
                                                                                   alice, carol):
        document = os.urandom(2000)
        raw, original_id = make_message(sender=alice.email, to=me.email, subject="Report",
                                        attachments=(("report.pdf", "application/pdf", document),))
        my_box = Mailbox(dovecot, me)
        reference = my_box.append("INBOX", raw)
        uploaded = self.upload(api, account, {
            "from": {"address": me.email}, "to": [{"address": carol.email}], "text": "FYI",
            "reference": {"message": reference, "action": "forward", "forwardAttachments": True}})
        parsed = email.message_from_bytes(my_box.raw(uploaded["uid"], "Drafts"), policy=policy.default)
        assert parsed["Subject"] == "Fwd: Report" and parsed["References"] == original_id
        assert attachments_of(parsed)["report.pdf"] == document

    def test_a_header_the_request_sets_otherwise_is_refused_naming_it(self, api, dovecot, account, me, alice):
        raw, _ = make_message(sender=alice.email, to=me.email, subject="Threaded")
        reference = Mailbox(dovecot, me).append("INBOX", raw)
        for headers, field in (({"Subject": "x"}, "headers.Subject"),
                               ({"References": "<a@b.c>"}, "headers.References")):
            response = api.post(f"/v1/account/{account}/message", {
                "path": "Drafts", "from": {"address": me.email}, "text": "x", "headers": headers,
                "reference": {"message": reference}})
            assert response.status == 422, response.body
            assert field in response.json["details"]

    def test_raw_with_headers_or_reference_is_refused(self, api, account):
        for extra in ({"headers": {"X-A": "1"}}, {"reference": {"message": "AAAA"}}):
            response = api.post(f"/v1/account/{account}/message",
                                {"path": "Drafts", "raw": "RnJvbTogYUBiLmMNCg0KeA==", **extra})
            assert response.status == 422, response.body
            assert f"also given: {next(iter(extra))}" in response.json["details"]["body"]
