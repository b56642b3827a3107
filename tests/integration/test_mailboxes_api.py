"""Mailboxes over REST against real servers: roles, counters, Unicode names, the hierarchy
separator, and every way create/rename/delete can fail. The listing, Unicode and change tests
run on every IMAP server family (Dovecot: top-level folders and "/"; Cyrus and Courier: every
folder under "INBOX." with "."; Courier: no SPECIAL-USE, so roles come from names); a second
Dovecot stands in for servers with localized names and a quota."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from tests.integration.mail_api_support import direct_imap, fill, make_message, register_account
from tests.support.fixtures import MAIL_DOMAIN, MailUser, require_mail_server_binaries
from tests.support.mailservers import Dovecot

UNICODE_NAMES = ["日本語のフォルダ", "Входящие-архив", "Grüße & Übersicht", "R&D", "中文/子文件夹"]
VALIDATION_ONLY = "request validation: refused before any server-specific IMAP"


@pytest.fixture
def account(api, mail_server, mail_user) -> str:
    return register_account(api, mail_server, mail_user)


@pytest.fixture(scope="module")
def dotted_dovecot(test_pki) -> Iterator[Dovecot]:
    """A second server: "." as separator, German special-use names, no Trash flag at all, and a
    64 KB quota per user."""
    require_mail_server_binaries()
    special_use = {"Gesendet": "\\Sent", "Entwürfe": "\\Drafts", "Spam": "\\Junk"}
    with Dovecot(test_pki, separator=".", special_use=special_use, quota_kilobytes=64) as server:
        yield server


def by_path(response) -> dict[str, dict]:
    assert response.status == 200, response.body
    return {mailbox["path"]: mailbox for mailbox in response.json["mailboxes"]}


@pytest.mark.imap_families()
class TestListing:
    def test_lists_inbox_and_special_use_mailboxes_with_their_roles(self, api, account, imap_family):
        # When the mailboxes of a fresh account are listed
        mailboxes = by_path(api.get(f"/v1/account/{account}/mailboxes"))

        # Then INBOX and the role folders carry their roles and where they came from (Courier
        # has no SPECIAL-USE: its roles are recognized by name)
        sent, trash, junk = (imap_family.folder(name) for name in ("Sent", "Trash", "Junk"))
        assert mailboxes["INBOX"]["specialUse"] == "\\Inbox"
        assert mailboxes[sent]["specialUse"] == "\\Sent"
        assert mailboxes[sent]["specialUseSource"] == ("extension" if imap_family.special_use else "name")
        assert mailboxes[trash]["specialUse"] == "\\Trash"
        assert mailboxes[junk]["specialUse"] == "\\Junk"
        assert mailboxes[sent]["subscribed"] is True
        assert mailboxes[sent]["delimiter"] == imap_family.separator
        if imap_family.prefix:
            assert mailboxes[sent]["parentPath"] == "INBOX"
        else:
            assert "parentPath" not in mailboxes[sent]  # None fields are omitted
        assert "messages" not in mailboxes["INBOX"]  # counters only on request

    def test_counters_report_messages_unseen_and_uid_state(self, api, account, mail_server, mail_user):
        # Given two messages in INBOX, one of them seen
        with direct_imap(mail_server, mail_user) as client:
            fill(client, "INBOX", [make_message()], flags=("\\Seen",))
            fill(client, "INBOX", [make_message()])
            uid_validity = client.folder_status("INBOX", ["UIDVALIDITY"])[b"UIDVALIDITY"]

        # When mailboxes are listed with counters
        inbox = by_path(api.get(f"/v1/account/{account}/mailboxes?counters=true"))["INBOX"]

        # Then the counters are the server's
        assert inbox["messages"] == 2
        assert inbox["unseen"] == 1
        assert inbox["uidNext"] == 3
        assert inbox["uidValidity"] == uid_validity

    def test_counters_of_the_mailbox_a_pooled_session_has_selected_are_current(self, api, account, mail_server,
                                                                                mail_user):
        # Given INBOX listed once: the pooled session that did it keeps INBOX selected
        api.get(f"/v1/account/{account}/messages?path=INBOX")
        # When a message arrives afterwards, through another connection
        with direct_imap(mail_server, mail_user) as client:
            fill(client, "INBOX", [make_message()])
        # Then the counters count it (Dovecot answers STATUS of the selected mailbox from the
        # session's own view, stale until the session hears of the new message)
        inbox = by_path(api.get(f"/v1/account/{account}/mailboxes?counters=true"))["INBOX"]
        assert (inbox["messages"], inbox["unseen"]) == (1, 1)

    @pytest.mark.dovecot_only(VALIDATION_ONLY)
    def test_unknown_account_is_404(self, api):
        response = api.get("/v1/account/nobody-here/mailboxes")
        assert response.status == 404
        assert response.json["code"] == "AccountNotFound"


@pytest.mark.imap_families()
class TestUnicodeNames:
    @pytest.mark.parametrize("leaf", UNICODE_NAMES)
    def test_created_name_lists_back_exactly_and_is_modified_utf7_on_the_wire(
            self, api, account, mail_server, mail_user, imap_family, leaf):
        # When a mailbox with a non-ASCII (or "&") name is created through the API ("/" is
        # Dovecot's separator; Cyrus and Courier refuse it in a name and nest with ".")
        name = imap_family.folder(leaf.replace("/", imap_family.separator))
        response = api.post(f"/v1/account/{account}/mailbox", {"path": name})
        assert response.status == 200, response.body
        assert response.json == {"path": name, "created": True}

        # Then the API lists it under the same Unicode name ...
        mailboxes = by_path(api.get(f"/v1/account/{account}/mailboxes"))
        assert name in mailboxes
        assert mailboxes[name]["subscribed"] is True

        # ... and the server stored the modified UTF-7 form (RFC 3501 5.1.3)
        with direct_imap(mail_server, mail_user) as client:
            client.folder_encode = False
            raw_names = {folder[2] for folder in client.list_folders()}
        from imapclient.imap_utf7 import encode

        assert encode(name) in raw_names

    def test_nested_creation_from_segments_uses_the_servers_delimiter(self, api, account, imap_family):
        # When a path is given as segments (under INBOX where the family keeps every folder)
        parent = imap_family.folder("Projekte")
        response = api.post(f"/v1/account/{account}/mailbox",
                            {"path": [*parent.split(imap_family.separator), "Größe 2024"]})

        # Then they are joined with the server's delimiter and the child knows its parent
        path = imap_family.folder("Projekte", "Größe 2024")
        assert response.json["path"] == path
        child = by_path(api.get(f"/v1/account/{account}/mailboxes"))[path]
        assert child["name"] == "Größe 2024"
        assert child["parentPath"] == parent


@pytest.mark.imap_families()
class TestChanges:
    def test_rename_moves_the_mailbox_and_its_messages(self, api, account, mail_server, mail_user, imap_family):
        # Given a mailbox holding a message
        old, new = imap_family.folder("Alt"), imap_family.folder("Neu")
        api.post(f"/v1/account/{account}/mailbox", {"path": old})
        with direct_imap(mail_server, mail_user) as client:
            fill(client, old, [make_message("kept")])

        # When it is renamed
        response = api.put(f"/v1/account/{account}/mailbox", {"path": old, "newPath": new})

        # Then the old name is gone and the new one holds the message
        assert response.status == 200, response.body
        assert response.json == {"path": old, "newPath": new, "renamed": True}
        mailboxes = by_path(api.get(f"/v1/account/{account}/mailboxes?counters=true"))
        assert old not in mailboxes
        assert mailboxes[new]["messages"] == 1

    def test_delete_removes_the_mailbox(self, api, account, imap_family):
        path = imap_family.folder("Weg damit")
        api.post(f"/v1/account/{account}/mailbox", {"path": path})
        response = api.delete(f"/v1/account/{account}/mailbox?path={path.replace(' ', '%20')}")
        assert response.status == 200, response.body
        assert response.json == {"path": path, "deleted": True}
        assert path not in by_path(api.get(f"/v1/account/{account}/mailboxes"))

    def test_creating_an_existing_mailbox_is_409(self, api, account, imap_family):
        twice = imap_family.folder("Twice")
        assert api.post(f"/v1/account/{account}/mailbox", {"path": twice}).status == 200
        response = api.post(f"/v1/account/{account}/mailbox", {"path": twice})
        assert response.status == 409
        assert response.json["code"] == "MailboxExists"
        assert "serverResponse" in response.json["details"]

    @pytest.mark.parametrize(("method", "body_or_query"), [
        ("put", {"path": "Missing", "newPath": "Other"}),
        ("delete", "?path=Missing"),
    ])
    def test_missing_mailbox_is_404(self, api, account, method, body_or_query, imap_family):
        missing = imap_family.folder("Missing")
        if isinstance(body_or_query, dict):
            body_or_query = {"path": missing, "newPath": imap_family.folder("Other")}
        else:
            body_or_query = f"?path={missing}"
        if method == "put":
            response = api.put(f"/v1/account/{account}/mailbox", body_or_query)
        else:
            response = api.delete(f"/v1/account/{account}/mailbox{body_or_query}")
        assert response.status == 404, response.body
        assert response.json["code"] == "MailboxNotFound"
        assert response.json["details"]["path"] == missing

    @pytest.mark.dovecot_only(VALIDATION_ONLY)
    @pytest.mark.parametrize("call", ["rename", "delete", "rename-to"])
    def test_inbox_cannot_be_renamed_or_deleted(self, api, account, call):
        if call == "rename":
            response = api.put(f"/v1/account/{account}/mailbox", {"path": "INBOX", "newPath": "Old mail"})
        elif call == "rename-to":
            api.post(f"/v1/account/{account}/mailbox", {"path": "Box"})
            response = api.put(f"/v1/account/{account}/mailbox", {"path": "Box", "newPath": "inbox"})
        else:
            response = api.delete(f"/v1/account/{account}/mailbox?path=INBOX")
        assert response.status == 409
        assert response.json["code"] == "InboxImmutable"

    @pytest.mark.dovecot_only(VALIDATION_ONLY)
    @pytest.mark.parametrize(("body", "field", "status"), [
        ({"path": ""}, "path", 400),
        ({"path": "bad\r\nname"}, "path", 422),  # control characters: the validator's rule
        ({"path": ["ok", ""]}, "path", 400),
        ({"path": "x", "extra": 1}, "extra", 400),
    ])
    def test_invalid_paths_are_refused_naming_the_field(self, api, account, body, field, status):
        response = api.post(f"/v1/account/{account}/mailbox", body)
        assert response.status == status
        assert response.json["code"] == "ValidationError"
        assert any(key.startswith(field) for key in response.json["details"])

    def test_segment_containing_the_delimiter_is_422(self, api, account, imap_family):
        separator = imap_family.separator
        response = api.post(f"/v1/account/{account}/mailbox", {"path": [f"a{separator}b", "c"]})
        assert response.status == 422
        assert response.json["details"] == {"path.0": f"must not contain '{separator}'"}


class TestDotSeparatorAndLocalizedNames:
    @pytest.fixture
    def dotted_account(self, api, dotted_dovecot) -> tuple[str, MailUser]:
        import secrets

        user = MailUser(f"u-{secrets.token_hex(6)}@{MAIL_DOMAIN}", secrets.token_urlsafe(16))
        dotted_dovecot.add_user(user.email, user.password)
        return register_account(api, dotted_dovecot, user), user

    def test_roles_come_from_flags_and_from_localized_names(self, api, dotted_account):
        account, _ = dotted_account
        # Given a German "Papierkorb" the server does not flag, and a nested "Sent" that is no role
        api.post(f"/v1/account/{account}/mailbox", {"path": "Papierkorb"})
        api.post(f"/v1/account/{account}/mailbox", {"path": ["Kunden", "Sent"]})

        mailboxes = by_path(api.get(f"/v1/account/{account}/mailboxes"))

        # Then flagged roles say "extension", the guessed one "name", and nesting disqualifies a name
        assert mailboxes["Gesendet"]["specialUse"] == "\\Sent"
        assert mailboxes["Gesendet"]["specialUseSource"] == "extension"
        assert mailboxes["Entwürfe"]["specialUse"] == "\\Drafts"
        assert mailboxes["Papierkorb"]["specialUse"] == "\\Trash"
        assert mailboxes["Papierkorb"]["specialUseSource"] == "name"
        assert "specialUse" not in mailboxes["Kunden.Sent"]
        assert mailboxes["Kunden.Sent"]["delimiter"] == "."
        assert mailboxes["Kunden.Sent"]["parentPath"] == "Kunden"

    def test_segments_join_with_dot_and_a_dot_inside_a_segment_is_refused(self, api, dotted_account):
        account, _ = dotted_account
        created = api.post(f"/v1/account/{account}/mailbox", {"path": ["Archiv", "2024", "März"]})
        assert created.json["path"] == "Archiv.2024.März"
        assert "Archiv.2024.März" in by_path(api.get(f"/v1/account/{account}/mailboxes"))

        refused = api.post(f"/v1/account/{account}/mailbox", {"path": ["v1.2"]})
        assert refused.status == 422
        assert refused.json["details"] == {"path.0": "must not contain '.'"}

    def test_delete_finds_trash_by_its_localized_name(self, api, dotted_account):
        account, _ = dotted_account
        api.post(f"/v1/account/{account}/mailbox", {"path": "Papierkorb"})
        raw = base64.b64encode(make_message("weg")).decode()
        uploaded = api.post(f"/v1/account/{account}/message", {"path": "INBOX", "raw": raw}).json

        response = api.delete(f"/v1/account/{account}/message/{uploaded['id']}")

        assert response.status == 200, response.body
        assert response.json["moved"]["path"] == "Papierkorb"
        listed = api.get(f"/v1/account/{account}/messages?path=Papierkorb").json
        assert [m["subject"] for m in listed["messages"]] == ["weg"]

    def test_upload_over_quota_is_507_with_the_servers_words(self, api, dotted_account):
        account, _ = dotted_account
        big = make_message("too big", body="x" * 100 + "\n" + ("y" * 76 + "\n") * 1200)
        response = api.post(f"/v1/account/{account}/message",
                            {"path": "INBOX", "raw": base64.b64encode(big).decode()})
        assert response.status == 507, response.body
        assert response.json["code"] == "OverQuota"
        assert "quota" in response.json["details"]["serverResponse"].lower()
