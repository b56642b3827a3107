"""Reading messages over REST against every IMAP server family (Dovecot, Cyrus with and without
idled, Courier): pages and cursors, one message, its text, source and attachments, ids that go
stale, and the flags a read must not touch."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.message_ids import MessageRef, decode_message_id, encode_message_id
from tests.integration.mail_api_support import fill, make_message

ACCEPT_ANY = {"Accept": "*/*"}
pytestmark = pytest.mark.imap_families()
VALIDATION_ONLY = "request validation: refused before any server-specific IMAP"


def listing(api, account, query: str = "") -> dict:
    response = api.get(f"/v1/account/{account}/messages{query}")
    assert response.status == 200, response.body
    return response.json


def uids_of(page: dict) -> list[int]:
    return [message["uid"] for message in page["messages"]]


class TestPaging:
    def test_empty_mailbox_has_one_empty_page_and_no_cursor(self, api, account, imap_family):
        page = listing(api, account, f"?path={imap_family.folder('Archive')}")
        assert page == {"total": 0, "page": 0, "pages": 1, "messages": []}

    def test_pages_are_newest_first_and_the_last_page_has_no_cursor(self, api, account, imap):
        # Given five messages
        fill(imap, "INBOX", [make_message(f"message {i}") for i in range(1, 6)])

        # When they are read two per page
        first, second, last = (listing(api, account, f"?pageSize=2&page={n}") for n in range(3))

        # Then the pages hold UIDs 5,4 / 3,2 / 1, and only the last has no cursor
        assert (uids_of(first), uids_of(second), uids_of(last)) == ([5, 4], [3, 2], [1])
        assert first["total"] == 5 and first["pages"] == 3
        assert first["nextPageCursor"] and second["nextPageCursor"]
        assert "nextPageCursor" not in last

    def test_a_page_beyond_the_end_is_empty_not_an_error(self, api, account, imap):
        fill(imap, "INBOX", [make_message()])
        page = listing(api, account, "?pageSize=10&page=7")
        assert page["messages"] == [] and page["total"] == 1 and page["page"] == 7

    def test_cursor_stays_on_course_while_new_mail_arrives(self, api, account, imap, mail_server, mail_user):
        # Given six messages and the first page of two
        fill(imap, "INBOX", [make_message(f"old {i}") for i in range(1, 7)])
        first = listing(api, account, "?pageSize=2")
        assert uids_of(first) == [6, 5]

        # When three messages arrive before the next page is asked for
        for i in range(3):
            mail_server.deliver(mail_user.email, make_message(f"new {i}"))

        # Then the cursor continues below the page already seen, while page=1 has shifted
        by_cursor = listing(api, account, f"?pageSize=2&cursor={first['nextPageCursor']}")
        assert uids_of(by_cursor) == [4, 3]
        assert by_cursor["page"] == 1
        assert uids_of(listing(api, account, "?pageSize=2&page=1")) == [7, 6]
        # ... and following cursors reaches the oldest message exactly once
        seen = uids_of(first) + uids_of(by_cursor)
        cursor = by_cursor.get("nextPageCursor")
        while cursor:
            page = listing(api, account, f"?pageSize=2&cursor={cursor}")
            seen += uids_of(page)
            cursor = page.get("nextPageCursor")
        assert seen == [6, 5, 4, 3, 2, 1]

    def test_cursor_of_another_mailbox_or_tampered_is_400(self, api, account, imap, imap_family):
        fill(imap, "INBOX", [make_message() for _ in range(3)])
        cursor = listing(api, account, "?pageSize=1")["nextPageCursor"]

        other = api.get(f"/v1/account/{account}/messages?path={imap_family.folder('Archive')}&cursor={cursor}")
        tampered = api.get(f"/v1/account/{account}/messages?cursor={cursor[:-2]}x")
        assert (other.status, other.json["code"]) == (422, "InvalidCursor")
        assert (tampered.status, tampered.json["code"]) == (422, "InvalidCursor")

    @pytest.mark.dovecot_only(VALIDATION_ONLY)
    @pytest.mark.parametrize("query", ["?pageSize=0", "?pageSize=1001", "?page=-1", "?pageSize=x", "?foo=1"])
    def test_bad_paging_parameters_are_400(self, api, account, query):
        response = api.get(f"/v1/account/{account}/messages{query}")
        assert response.status == 400
        assert response.json["code"] == "ValidationError"

    def test_missing_mailbox_is_404(self, api, account):
        response = api.get(f"/v1/account/{account}/messages?path=Nowhere")
        assert response.status == 404
        assert response.json["code"] == "MailboxNotFound"


class TestListingFields:
    def test_entry_shows_envelope_flags_attachments_and_text_sizes(self, api, account, imap):
        # Given a message with a Cc, HTML, a Unicode-named attachment, and \\Flagged
        raw = make_message("Quarterly numbers", sender='"Müller, Jürgen" <jm@example.test>',
                           to="Bob <bob@example.test>", html="<p>Hi</p>",
                           attachments=[("Übersicht 2024.pdf", "application/pdf", b"%PDF-1.4 test")],
                           date=datetime(2024, 3, 1, 12, 30, tzinfo=UTC), message_id="<q1@example.test>")
        raw = raw.replace(b"To: Bob", b"Cc: Carol <carol@example.test>\r\nTo: Bob", 1)
        fill(imap, "INBOX", [raw], flags=("\\Flagged",))

        entry = listing(api, account)["messages"][0]

        assert entry["subject"] == "Quarterly numbers"
        assert entry["from"] == {"name": "Müller, Jürgen", "address": "jm@example.test"}
        assert entry["to"] == [{"name": "Bob", "address": "bob@example.test"}]
        assert entry["cc"] == [{"name": "Carol", "address": "carol@example.test"}]
        assert entry["messageId"] == "<q1@example.test>"
        assert entry["date"] == "2024-03-01T12:30:00Z"
        assert entry["flagged"] is True and entry["unseen"] is True and entry["flags"] == ["\\Flagged"]
        assert entry["size"] == len(raw)
        [attachment] = entry["attachments"]
        assert attachment["filename"] == "Übersicht 2024.pdf"
        assert attachment["contentType"] == "application/pdf"
        assert attachment["embedded"] is False
        assert entry["text"]["encodedSize"]["plain"] > 0 and entry["text"]["encodedSize"]["html"] > 0
        assert decode_message_id(entry["id"]).uid == entry["uid"]


    def test_a_page_listed_again_shows_flags_changed_in_between(self, api, account, imap):
        # Given a listed message (its decoded entry is now remembered)
        [uid] = fill(imap, "INBOX", [make_message("seen later")])
        assert listing(api, account)["messages"][0]["unseen"] is True

        # When another client marks it seen and flags it
        imap.select_folder("INBOX")
        imap.add_flags([uid], ["\\Seen", "\\Flagged"])

        # Then the next listing shows the new flags with the same decoded fields
        entry = listing(api, account)["messages"][0]
        assert (entry["unseen"], entry["flagged"], entry["subject"]) == (False, True, "seen later")
        assert sorted(entry["flags"]) == ["\\Flagged", "\\Seen"]


class TestOneMessage:
    def test_message_has_headers_and_text_and_reading_it_does_not_mark_it_seen(self, api, account, imap):
        [uid] = fill(imap, "INBOX", [make_message("Grüße", body="Hallo Welt\n", html="<p>Hallo <b>Welt</b></p>")])
        message_id = listing(api, account)["messages"][0]["id"]

        message = api.get(f"/v1/account/{account}/message/{message_id}").json

        assert message["subject"] == "Grüße"
        assert message["headers"]["subject"] == ["Grüße"]
        assert message["text"]["plain"] == "Hallo Welt\n"
        assert message["text"]["html"] == "<p>Hallo <b>Welt</b></p>\n"
        assert message["text"]["hasMore"] is False
        imap.select_folder("INBOX", readonly=True)
        assert b"\\Seen" not in imap.get_flags([uid])[uid]

    def test_mark_as_seen_sets_the_flag(self, api, account, imap):
        [uid] = fill(imap, "INBOX", [make_message()])
        message_id = listing(api, account)["messages"][0]["id"]

        message = api.get(f"/v1/account/{account}/message/{message_id}?markAsSeen=true").json

        assert "\\Seen" in message["flags"] and message["unseen"] is False
        imap.select_folder("INBOX", readonly=True)
        assert b"\\Seen" in imap.get_flags([uid])[uid]

    def test_text_type_and_max_bytes_cut_the_text(self, api, account, imap):
        fill(imap, "INBOX", [make_message(body="é" * 5000 + "\n", html="<p>x</p>")])
        message_id = listing(api, account)["messages"][0]["id"]

        message = api.get(f"/v1/account/{account}/message/{message_id}?textType=plain&maxBytes=101").json

        assert "html" not in message["text"]
        assert message["text"]["plain"] == "é" * 50  # 100 bytes: a character is never split
        assert message["text"]["hasMore"] is True

    def test_text_endpoint_returns_the_decoded_text(self, api, account, imap):
        fill(imap, "INBOX", [make_message(body="Только текст\n")])
        text_id = listing(api, account)["messages"][0]["text"]["id"]
        response = api.get(f"/v1/account/{account}/text/{text_id}?textType=plain")
        assert response.status == 200, response.body
        assert response.json == {"plain": "Только текст\n", "hasMore": False}

    def test_source_is_the_exact_message(self, api, account, imap):
        raw = make_message("source", attachments=[("x.bin", "application/octet-stream", bytes(range(256)))])
        fill(imap, "INBOX", [raw])
        message_id = listing(api, account)["messages"][0]["id"]

        response = api.get(f"/v1/account/{account}/message/{message_id}/source", headers=ACCEPT_ANY)

        assert response.status == 200
        assert response.headers["Content-Type"] == "message/rfc822"
        assert response.body == raw

    def test_attachment_is_decoded_with_its_type_and_filename(self, api, account, imap):
        content = bytes(range(256)) * 4
        fill(imap, "INBOX", [make_message(attachments=[("Größe.bin", "application/x-test", content)])])
        attachment = listing(api, account)["messages"][0]["attachments"][0]

        response = api.get(f"/v1/account/{account}/attachment/{attachment['id']}", headers=ACCEPT_ANY)

        assert response.status == 200
        assert response.body == content
        assert response.headers["Content-Type"] == "application/x-test"
        assert "filename*=UTF-8''Gr%C3%B6%C3%9Fe.bin" in response.headers["Content-Disposition"]


class TestIds:
    @pytest.mark.dovecot_only(VALIDATION_ONLY)
    @pytest.mark.parametrize("bad", ["not-an-id", "AAAA", "!!", "x" * 3000])
    def test_malformed_message_id_is_422(self, api, account, bad):
        response = api.get(f"/v1/account/{account}/message/{bad}")
        assert response.status == 422
        assert response.json["code"] == "InvalidMessageId"

    def test_attachment_id_used_as_message_id_is_422(self, api, account, imap):
        fill(imap, "INBOX", [make_message(attachments=[("a.txt", "text/plain", b"a")])])
        attachment_id = listing(api, account)["messages"][0]["attachments"][0]["id"]
        response = api.get(f"/v1/account/{account}/message/{attachment_id}")
        assert response.json["code"] == "InvalidMessageId"

    def test_expunged_message_is_404(self, api, account, imap):
        [uid] = fill(imap, "INBOX", [make_message()])
        message_id = listing(api, account)["messages"][0]["id"]
        imap.select_folder("INBOX")
        imap.delete_messages([uid])
        imap.expunge()

        for path in ("", "/source"):
            response = api.get(f"/v1/account/{account}/message/{message_id}{path}", headers=ACCEPT_ANY)
            assert response.status == 404
            assert response.json["code"] == "MessageNotFound"

    def test_id_from_before_a_uidvalidity_change_is_404(self, api, account, imap):
        fill(imap, "INBOX", [make_message()])
        ref = decode_message_id(listing(api, account)["messages"][0]["id"])
        stale = encode_message_id(MessageRef(ref.path, ref.uid_validity - 1, ref.uid))
        response = api.get(f"/v1/account/{account}/message/{stale}")
        assert response.status == 404
        assert response.json["code"] == "MessageNotFound"

    def test_id_of_a_deleted_mailbox_is_404(self, api, account, imap, imap_family):
        temp = imap_family.folder("Temp")
        assert api.post(f"/v1/account/{account}/mailbox", {"path": temp}).status == 200
        fill(imap, temp, [make_message()])
        message_id = listing(api, account, f"?path={temp}")["messages"][0]["id"]
        api.delete(f"/v1/account/{account}/mailbox?path={temp}")
        response = api.get(f"/v1/account/{account}/message/{message_id}")
        assert (response.status, response.json["code"]) == (404, "MessageNotFound")


class TestUpload:
    def test_raw_upload_returns_a_working_id(self, api, account, imap_family):
        raw = make_message("uploaded raw")
        drafts = imap_family.folder("Drafts")
        response = api.post(f"/v1/account/{account}/message",
                            {"path": drafts, "flags": ["\\Draft", "$Label1"], "raw": base64.b64encode(raw).decode(),
                             "internalDate": "2024-01-02T03:04:05Z"})
        assert response.status == 200, response.body
        uploaded = response.json
        assert uploaded["path"] == drafts and uploaded["uid"] == 1

        message = api.get(f"/v1/account/{account}/message/{uploaded['id']}").json
        assert message["subject"] == "uploaded raw"
        assert sorted(message["flags"]) == ["$Label1", "\\Draft"]
        assert message["internalDate"] == "2024-01-02T03:04:05Z"
        assert api.get(f"/v1/account/{account}/message/{uploaded['id']}/source", headers=ACCEPT_ANY).body == raw

    def test_upload_from_fields_builds_mime(self, api, account):
        response = api.post(f"/v1/account/{account}/message", {
            "path": "INBOX", "from": {"name": "Zoë", "address": "zoe@example.test"},
            "to": [{"address": "bob@example.test"}], "subject": "Built ✓", "text": "plain", "html": "<p>rich</p>",
            "attachments": [{"filename": "n.txt", "content": base64.b64encode(b"notes").decode(),
                             "contentType": "text/plain"}]})
        assert response.status == 200, response.body
        message = api.get(f"/v1/account/{account}/message/{response.json['id']}").json
        assert message["subject"] == "Built ✓"
        assert message["from"] == {"name": "Zoë", "address": "zoe@example.test"}
        assert message["text"]["plain"].strip() == "plain"
        assert [a["filename"] for a in message["attachments"]] == ["n.txt"]
        assert message["messageId"] == response.json["messageId"]

    @pytest.mark.dovecot_only(VALIDATION_ONLY)
    @pytest.mark.parametrize(("body", "field"), [
        ({"path": "INBOX", "raw": "***"}, "raw"),
        ({"path": "INBOX", "raw": "eA==", "subject": "both"}, "body"),
        ({"path": "INBOX", "subject": "no sender"}, "body"),
        ({"path": "INBOX", "raw": "eA==", "flags": ["bad flag"]}, "flags.0"),
    ])
    def test_invalid_upload_is_422_naming_the_field(self, api, account, body, field):
        # Schema-valid, but against the rules the model's validators keep (base64, raw xor fields, flag syntax)
        response = api.post(f"/v1/account/{account}/message", body)
        assert response.status == 422, response.body
        assert field in response.json["details"]

    def test_upload_into_a_missing_mailbox_is_404(self, api, account):
        raw = base64.b64encode(make_message()).decode()
        response = api.post(f"/v1/account/{account}/message", {"path": "Nope", "raw": raw})
        assert (response.status, response.json["code"]) == (404, "MailboxNotFound")


def test_dates_in_the_past_are_listed_in_utc(api, account, imap):
    sent = datetime(2023, 12, 31, 23, 30, tzinfo=UTC) + timedelta(hours=0)
    raw = make_message(date=sent).replace(b"+0000", b"-0500")
    fill(imap, "INBOX", [raw])
    assert listing(api, account)["messages"][0]["date"] == "2024-01-01T04:30:00Z"
