"""Changing messages over REST against every IMAP server family (Dovecot, Cyrus with and without
idled, Courier): flags, move (Courier has no MOVE), delete (never expunging a message nobody
named), search with Unicode, and the same changes in bulk by search."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest

from chalicelib.message_ids import decode_message_id
from tests.integration.mail_api_support import fill, make_message

pytestmark = pytest.mark.imap_families()
VALIDATION_ONLY = "request validation: refused before any server-specific IMAP"


def ids_by_subject(api, account, path: str = "INBOX") -> dict[str, str]:
    page = api.get(f"/v1/account/{account}/messages?path={path}&pageSize=100").json
    return {message["subject"]: message["id"] for message in page["messages"]}


def subjects(imap, folder: str) -> set[str]:
    imap.select_folder(folder, readonly=True)
    fetched = imap.fetch(imap.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    # The answer's key echoes the section as the server spells it: Courier quotes the field
    # name (BODY[HEADER.FIELDS ("SUBJECT")]), Dovecot and Cyrus do not.
    headers = [value for item in fetched.values() for key, value in item.items() if key.startswith(b"BODY[")]
    return {header.decode().split(":", 1)[1].strip() for header in headers}


def flags_of(imap, folder: str, uid: int) -> set[bytes]:
    imap.select_folder(folder, readonly=True)
    return set(imap.get_flags([uid])[uid])


class TestFlags:
    def test_add_delete_and_set_report_exactly_what_changed(self, api, account, imap):
        [uid] = fill(imap, "INBOX", [make_message("flags")], flags=("\\Flagged",))
        message_id = ids_by_subject(api, account)["flags"]

        added = api.put(f"/v1/account/{account}/message/{message_id}",
                        {"flags": {"add": ["\\Seen", "\\Flagged", "$Work"], "delete": ["\\Answered"]}})
        assert added.status == 200, added.body
        assert added.json == {"flags": {"added": ["$Work", "\\Seen"], "removed": [],
                                        "current": ["$Work", "\\Flagged", "\\Seen"]}}
        assert flags_of(imap, "INBOX", uid) == {b"\\Seen", b"\\Flagged", b"$Work"}

        replaced = api.put(f"/v1/account/{account}/message/{message_id}", {"flags": {"set": ["\\Answered"]}})
        assert replaced.json["flags"] == {"added": ["\\Answered"], "removed": ["$Work", "\\Flagged", "\\Seen"],
                                          "current": ["\\Answered"]}

    @pytest.mark.dovecot_only(VALIDATION_ONLY)
    @pytest.mark.parametrize("flag", ["\\", "two words", "(paren", "a" * 200, "\\*"])
    def test_invalid_flag_is_422_naming_it(self, api, account, imap, flag):
        fill(imap, "INBOX", [make_message("x")])
        message_id = ids_by_subject(api, account)["x"]
        response = api.put(f"/v1/account/{account}/message/{message_id}", {"flags": {"add": [flag]}})
        assert response.status == 422
        assert "flags.add.0" in response.json["details"]

    def test_labels_on_a_server_without_them_is_400(self, api, account, imap):
        fill(imap, "INBOX", [make_message("x")])
        message_id = ids_by_subject(api, account)["x"]
        response = api.put(f"/v1/account/{account}/message/{message_id}", {"labels": {"add": ["Work"]}})
        assert (response.status, response.json["code"]) == (422, "UnsupportedByServer")


class TestMove:
    def test_move_answers_the_new_id_and_the_old_one_is_gone(self, api, account, imap, imap_family):
        fill(imap, "INBOX", [make_message("mover"), make_message("stayer")])
        message_id = ids_by_subject(api, account)["mover"]
        archive = imap_family.folder("Archive")

        response = api.put(f"/v1/account/{account}/message/{message_id}/move", {"path": archive})

        assert response.status == 200, response.body
        moved = response.json
        assert moved["path"] == archive and moved["uid"] == 1
        assert decode_message_id(moved["id"]).path == archive
        assert api.get(f"/v1/account/{account}/message/{moved['id']}").json["subject"] == "mover"
        assert api.get(f"/v1/account/{account}/message/{message_id}").json["code"] == "MessageNotFound"
        assert subjects(imap, "INBOX") == {"stayer"}

    def test_move_to_a_missing_mailbox_is_404_and_moves_nothing(self, api, account, imap):
        fill(imap, "INBOX", [make_message("kept")])
        message_id = ids_by_subject(api, account)["kept"]
        response = api.put(f"/v1/account/{account}/message/{message_id}/move", {"path": "Nope"})
        assert (response.status, response.json["code"]) == (404, "MailboxNotFound")
        assert subjects(imap, "INBOX") == {"kept"}

    def test_move_into_the_same_mailbox_is_409(self, api, account, imap):
        fill(imap, "INBOX", [make_message("x")])
        message_id = ids_by_subject(api, account)["x"]
        response = api.put(f"/v1/account/{account}/message/{message_id}/move", {"path": "INBOX"})
        assert (response.status, response.json["code"]) == (409, "SameMailbox")


class TestDelete:
    def test_delete_moves_to_trash(self, api, account, imap, imap_family):
        fill(imap, "INBOX", [make_message("bye")])
        message_id = ids_by_subject(api, account)["bye"]

        response = api.delete(f"/v1/account/{account}/message/{message_id}")

        assert response.status == 200, response.body
        assert response.json["deleted"] is False
        assert response.json["moved"]["path"] == imap_family.folder("Trash")
        assert subjects(imap, imap_family.folder("Trash")) == {"bye"}

    def test_delete_in_trash_expunges_only_that_message(self, api, account, imap, imap_family):
        # Given two messages in Trash, one of them flagged \\Deleted by another client
        trash = imap_family.folder("Trash")
        [other, _] = fill(imap, trash, [make_message("flagged elsewhere"), make_message("target")])
        imap.select_folder(trash)
        imap.add_flags([other], ["\\Deleted"])
        message_id = ids_by_subject(api, account, trash)["target"]

        # When the API deletes the target
        response = api.delete(f"/v1/account/{account}/message/{message_id}")

        # Then only the target is expunged (UID EXPUNGE), the other \\Deleted message survives
        assert response.json == {"deleted": True}
        assert subjects(imap, trash) == {"flagged elsewhere"}

    def test_force_expunges_outside_trash_without_touching_other_deleted_messages(self, api, account, imap,
                                                                                   imap_family):
        [other, _] = fill(imap, "INBOX", [make_message("other"), make_message("target")])
        imap.select_folder("INBOX")
        imap.add_flags([other], ["\\Deleted"])
        message_id = ids_by_subject(api, account)["target"]

        response = api.delete(f"/v1/account/{account}/message/{message_id}?force=true")

        assert response.json == {"deleted": True}
        assert subjects(imap, "INBOX") == {"other"}
        assert subjects(imap, imap_family.folder("Trash")) == set()

    def test_deleting_twice_is_404(self, api, account, imap):
        fill(imap, "INBOX", [make_message("once")])
        message_id = ids_by_subject(api, account)["once"]
        assert api.delete(f"/v1/account/{account}/message/{message_id}?force=true").status == 200
        response = api.delete(f"/v1/account/{account}/message/{message_id}?force=true")
        assert (response.status, response.json["code"]) == (404, "MessageNotFound")


class TestSearch:
    @pytest.fixture
    def mailbox(self, imap):
        fill(imap, "INBOX", [
            make_message("Grüße aus München", sender="Jörg <joerg@example.test>"),
            make_message("日本語の件名", body="本文にキーワードがあります\n"),
            make_message("plain ascii", body="nothing special\n"),
            make_message("Привет", sender="ivan@example.test"),
        ])
        imap.select_folder("INBOX")
        imap.add_flags([3], ["\\Flagged"])

    def search(self, api, account, search: dict, query: str = "") -> dict:
        response = api.post(f"/v1/account/{account}/search?path=INBOX{query}", {"search": search})
        assert response.status == 200, response.body
        return response.json

    @pytest.mark.parametrize(("search", "expected"), [
        ({"subject": "Grüße"}, ["Grüße aus München"]),
        ({"subject": "日本語"}, ["日本語の件名"]),
        ({"body": "キーワード"}, ["日本語の件名"]),
        ({"subject": "привет"}, ["Привет"]),
        ({"from": "Jörg"}, ["Grüße aus München"]),
        ({"flagged": True}, ["plain ascii"]),
        ({"flagged": False, "from": "example.test"}, ["Привет", "日本語の件名", "Grüße aus München"]),
        ({"header": {"Subject": "ascii"}}, ["plain ascii"]),
        ({"uid": "2:3"}, ["plain ascii", "日本語の件名"]),
        ({"since": "2000-01-01", "larger": 10}, ["Привет", "plain ascii", "日本語の件名", "Grüße aus München"]),
        ({"before": "2000-01-01"}, []),
    ])
    def test_criteria_find_the_right_messages_newest_first(self, api, account, mailbox, search, expected):
        result = self.search(api, account, search)
        assert [message["subject"] for message in result["messages"]] == expected
        assert result["total"] == len(expected)

    def test_search_results_page_with_a_cursor(self, api, account, mailbox):
        first = self.search(api, account, {"from": "example.test"}, "&pageSize=3")
        second = self.search(api, account, {"from": "example.test"}, f"&pageSize=3&cursor={first['nextPageCursor']}")
        assert [m["uid"] for m in first["messages"]] == [4, 3, 2]
        assert [m["uid"] for m in second["messages"]] == [1]
        assert "nextPageCursor" not in second
        other_query = api.post(f"/v1/account/{account}/search?path=INBOX&cursor={first['nextPageCursor']}",
                               {"search": {"subject": "x"}})
        assert other_query.json["code"] == "InvalidCursor"

    @pytest.mark.dovecot_only(VALIDATION_ONLY)
    @pytest.mark.parametrize(("search", "status", "code", "field"), [
        ({"emailId": "abc"}, 422, "UnsupportedSearch", "search.emailId"),
        ({"gmailRaw": "has:attachment"}, 422, "UnsupportedSearch", "search.gmailRaw"),
        ({"uid": "1:x"}, 422, "ValidationError", "search.uid"),
        ({"keyword": "two words"}, 422, "ValidationError", "search.keyword"),
        ({"subjekt": "typo"}, 400, "ValidationError", "search.subjekt"),
    ])
    def test_unsupported_or_invalid_criteria_are_refused(self, api, account, search, status, code, field):
        response = api.post(f"/v1/account/{account}/search?path=INBOX", {"search": search})
        assert response.status == status, response.body
        assert response.json["code"] == code
        assert field in response.json["details"]


def bracketed(search: dict, prefix: str = "search") -> list[tuple[str, str]]:
    """A search object as query keys, as EmailEngine's clients write it: search[header][X-Foo]=bar."""
    pairs: list[tuple[str, str]] = []
    for name, value in search.items():
        key = f"{prefix}[{name}]"
        if isinstance(value, dict):
            pairs += bracketed(value, key)
        else:
            pairs.append((key, str(value).lower() if isinstance(value, bool) else str(value)))
    return pairs


class TestSearchByUrl:
    """GET /search?search[field]=value: the POST body's search object, as query keys."""

    mailbox = TestSearch.mailbox

    @pytest.mark.parametrize("search", [
        {"subject": "Grüße"}, {"body": "キーワード"}, {"from": "Jörg"}, {"flagged": True},
        {"flagged": False, "from": "example.test"}, {"header": {"Subject": "ascii"}},
        {"since": "2000-01-01", "larger": 10}, {"before": "2000-01-01"},
    ])
    def test_query_keys_find_what_the_post_body_finds(self, api, account, mailbox, search):
        by_body = api.post(f"/v1/account/{account}/search?path=INBOX", {"search": search})
        by_url = api.get(f"/v1/account/{account}/search?path=INBOX&{urlencode(bracketed(search))}")
        assert by_url.status == 200, by_url.body
        assert by_url.json == by_body.json

    def test_keys_written_with_literal_brackets_and_paging_work_too(self, api, account, mailbox):
        first = api.get(f"/v1/account/{account}/search?search[from]=example.test&pageSize=3")
        assert first.status == 200, first.body
        assert [m["uid"] for m in first.json["messages"]] == [4, 3, 2]
        rest = api.get(f"/v1/account/{account}/search?search[from]=example.test&pageSize=3"
                       f"&cursor={first.json['nextPageCursor']}")
        assert [m["uid"] for m in rest.json["messages"]] == [1]

    def test_no_search_keys_finds_every_message(self, api, account, mailbox):
        response = api.get(f"/v1/account/{account}/search?path=INBOX")
        assert response.status == 200 and response.json["total"] == 4

    @pytest.mark.dovecot_only(VALIDATION_ONLY)
    @pytest.mark.parametrize(("query", "code", "field"), [
        ("search=x", "InvalidQueryKey", "query.search"),
        ("search[from=x", "InvalidQueryKey", "query.search[from"),
        ("search[from]x=y", "InvalidQueryKey", "query.search[from]x"),
        ("search[from]=a&search[from][b]=c", "InvalidQueryKey", "query.search[from][b]"),
        ("search[]=x", "ValidationError", "query.search."),
        ("search[subjekt]=typo", "ValidationError", "query.search.subjekt"),
        ("search[larger]=big", "ValidationError", "query.search.larger"),
    ])
    def test_a_bad_key_is_a_400_naming_it(self, api, account, query, code, field):
        response = api.get(f"/v1/account/{account}/search?{query}")
        assert response.status == 400, response.body
        assert response.json["code"] == code
        assert field in response.json["details"]


class TestSearchTextIsNeverMisread:
    """Terms with IMAP's special characters reach the server as one string (quoted or literal)."""

    @pytest.fixture
    def mailbox(self, imap):
        fill(imap, "INBOX", [
            make_message("budget {5} items"),
            make_message('she said "hi" from C:\\temp\\new'),
            make_message("Grüße aus Köln"),
        ])

    def search(self, api, account, search: dict):
        started = time.monotonic()
        response = api.post(f"/v1/account/{account}/search?path=INBOX", {"search": search})
        return response, time.monotonic() - started

    def test_a_term_that_looks_like_a_literal_answers_at_once(self, api, account, mailbox):
        # Given a mailbox with one subject containing "{5}"
        # When "{5}" is searched for
        response, seconds = self.search(api, account, {"subject": "{5}"})
        # Then the answer comes at once (no literal announced to the server) and finds it
        assert response.status == 200, response.body
        assert seconds < 2.0
        assert [m["subject"] for m in response.json["messages"]] == ["budget {5} items"]

    @pytest.mark.parametrize("term", ['"hi"', "C:\\temp\\new", 'said "hi" from C:\\temp'])
    def test_quotes_and_backslashes_are_matched_literally(self, api, account, mailbox, term):
        response, _ = self.search(api, account, {"subject": term})
        assert response.status == 200, response.body
        assert [m["subject"] for m in response.json["messages"]] == ['she said "hi" from C:\\temp\\new']

    def test_8bit_text_finds_the_utf8_subject(self, api, account, mailbox):
        response, _ = self.search(api, account, {"subject": "Grüße"})
        assert [m["subject"] for m in response.json["messages"]] == ["Grüße aus Köln"]

    def test_cr_and_lf_go_as_a_literal_and_match_nothing(self, api, account, mailbox, imap_family):
        response, seconds = self.search(api, account, {"subject": "budget\r\n{5}"})
        assert (response.status, seconds < 2.0) == (200, True)
        # Cyrus compares header text with white space folded, so "budget\r\n{5}" matches
        # "budget {5} items" there; Dovecot and Courier compare the bytes and find nothing.
        found = [m["subject"] for m in response.json["messages"]]
        assert found == (["budget {5} items"] if imap_family.id.startswith("cyrus") else [])

    @pytest.mark.parametrize("search", [{"subject": "a\x00b"}, {"header": {"X-Tag": "\x00"}}])
    def test_nul_is_a_422_naming_the_field_and_the_connection_stays_usable(self, api, account, mailbox, search):
        response, _ = self.search(api, account, search)
        assert (response.status, response.json["code"]) == (422, "ValidationError")
        assert any(field.startswith("search.") for field in response.json["details"])
        assert self.search(api, account, {"subject": "Grüße"})[0].status == 200


class TestBulk:
    @pytest.fixture
    def mailbox(self, imap):
        return fill(imap, "INBOX", [make_message(f"{kind} {i}") for kind in ("news", "keep") for i in range(3)])

    def test_flags_by_search(self, api, account, imap, mailbox):
        response = api.put(f"/v1/account/{account}/messages?path=INBOX",
                           {"search": {"subject": "news"}, "flags": {"add": ["\\Seen"]}})
        assert response.json == {"path": "INBOX", "matched": 3, "updated": 3}
        imap.select_folder("INBOX", readonly=True)
        assert sorted(imap.search(["SEEN"])) == mailbox[:3]

    def test_move_by_search(self, api, account, imap, mailbox, imap_family):
        archive = imap_family.folder("Archive")
        response = api.put(f"/v1/account/{account}/messages/move?path=INBOX",
                           {"search": {"subject": "news"}, "path": archive})
        assert response.json == {"path": "INBOX", "destination": archive, "matched": 3, "moved": 3}
        assert subjects(imap, archive) == {"news 0", "news 1", "news 2"}
        assert subjects(imap, "INBOX") == {"keep 0", "keep 1", "keep 2"}

    def test_delete_by_search_moves_to_trash_or_expunges_with_force(self, api, account, imap, mailbox, imap_family):
        trash = imap_family.folder("Trash")
        to_trash = api.put(f"/v1/account/{account}/messages/delete?path=INBOX", {"search": {"subject": "news 1"}})
        assert to_trash.json == {"path": "INBOX", "destination": trash, "matched": 1, "moved": 1, "deleted": 0}
        forced = api.put(f"/v1/account/{account}/messages/delete?path=INBOX",
                         {"search": {"subject": "news"}, "force": True})
        assert forced.json == {"path": "INBOX", "matched": 2, "deleted": 2}
        assert subjects(imap, "INBOX") == {"keep 0", "keep 1", "keep 2"}
        assert subjects(imap, trash) == {"news 1"}

    def test_bulk_on_nothing_matched_changes_nothing(self, api, account, mailbox):
        response = api.put(f"/v1/account/{account}/messages/delete?path=INBOX", {"search": {"subject": "zzz"}})
        assert response.json == {"path": "INBOX", "matched": 0, "deleted": 0}
