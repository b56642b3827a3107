"""Clients written for EmailEngine, on the account endpoints: its requests work here.

Against the real Dovecot and Postfix: the getting-started request without ``email``,
EmailEngine's fields we lack (accepted, ignored, named in ``warnings``; a typo is still a
400), the account list's ``state`` and ``query`` filters, and the ``accountAdded`` /
``accountDeleted`` events on the events queue.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from chalicelib.events.publisher import SqsEventSink
from chalicelib.schemas.emailengine_fields import IGNORED_REASON
from chalicelib.services import account_events
from tests.integration.mail_api_support import fill, make_message
from tests.integration.watcher_support import EventQueue


def ignored(*fields: str) -> list[dict[str, str]]:
    return sorted(({"field": field, "reason": IGNORED_REASON} for field in fields), key=lambda w: w["field"])


def warnings_of(response) -> list[dict[str, str]]:
    return sorted(response.json.get("warnings", []), key=lambda w: w["field"])


def login(server, user, *, port: int | None = None, **extra) -> dict:
    """EmailEngine's shape of a server: host, port, secure, auth {user, pass}."""
    return {"host": server.hostname, "port": port or server.imap_port, "secure": False,
            "auth": {"user": user.email, "pass": user.password}, **extra}


def unique(stem: str) -> str:
    return f"{stem}-{secrets.token_hex(4)}"


@pytest.fixture
def account_ids(api) -> Iterator[list[str]]:
    """Ids the test registers; deleted afterwards (the accounts table is shared by the session)."""
    created: list[str] = []
    yield created
    for account in created:
        api.delete(f"/v1/account/{account}")


class TestEmailFromTheLogin:
    def test_the_getting_started_request_takes_email_from_imap_auth_user(self, api, dovecot, postfix, mail_user,
                                                                       account_ids):
        # Given EmailEngine's first example: no email, the login names are addresses
        account = unique("example")
        body = {"account": account, "name": "My Example Account",
                "imap": {"auth": {"user": mail_user.email, "pass": mail_user.password},
                         "host": dovecot.hostname, "port": dovecot.imap_port, "secure": False},
                "smtp": {"auth": {"user": mail_user.email, "pass": mail_user.password},
                         "host": postfix.hostname, "port": postfix.smtp_port, "secure": False}}

        # When it is posted
        response = api.post("/v1/account", body)
        account_ids.append(account)

        # Then the account is registered with the IMAP login as its address
        assert response.status == 200, response.body
        assert response.json == {"account": account, "state": "new"}
        assert api.get(f"/v1/account/{account}").json["email"] == mail_user.email

    def test_smtp_auth_user_when_the_imap_login_is_no_address(self, api, account_ids):
        account = unique("smtp-address")
        response = api.post("/v1/account", {
            "account": account, "verify": False,
            "imap": {"host": "imap.example.com", "port": 993, "secure": True,
                     "auth": {"user": "plainname", "pass": "p"}},
            "smtp": {"host": "smtp.example.com", "port": 465, "secure": True,
                     "auth": {"user": "Sender@Example.com", "pass": "p"}}})
        account_ids.append(account)
        assert response.status == 200, response.body
        assert api.get(f"/v1/account/{account}").json["email"] == "Sender@example.com"  # domain normalized

    def test_an_empty_email_counts_as_absent_as_in_emailengine(self, api, account_ids):
        account = unique("empty-email")
        response = api.post("/v1/account", {
            "account": account, "email": "", "verify": False,
            "imap": {"host": "imap.example.com", "port": 993, "secure": True,
                     "auth": {"user": "me@example.com", "pass": "p"}}})
        account_ids.append(account)
        assert response.status == 200, response.body
        assert api.get(f"/v1/account/{account}").json["email"] == "me@example.com"

    @pytest.mark.parametrize("email", [None, ""], ids=["absent", "empty"])
    def test_without_an_address_anywhere_it_is_a_400_naming_email(self, api, email):
        body = {"account": unique("no-address"), "verify": False,
                "imap": {"host": "imap.example.com", "port": 993, "secure": True,
                         "auth": {"user": "plainname", "pass": "p"}}}
        if email is not None:
            body["email"] = email
        response = api.post("/v1/account", body)
        assert response.status == 400, response.body
        assert response.json["code"] == "ValidationError"
        assert list(response.json["details"]) == ["email"]
        assert response.json["details"]["email"].startswith("Field required")

    def test_an_empty_email_in_an_update_leaves_it_unchanged(self, api, account_ids):
        account = unique("keep-email")
        assert api.post("/v1/account", {"account": account, "email": "kept@example.com", "verify": False, "imap": {
            "host": "imap.example.com", "port": 993, "secure": True, "auth": {"user": "u", "pass": "p"}}}).status == 200
        account_ids.append(account)
        response = api.put(f"/v1/account/{account}", {"email": "", "name": "Renamed"})
        assert response.status == 200, response.body
        assert (response.json["email"], response.json["name"]) == ("kept@example.com", "Renamed")

    def test_a_given_email_wins_over_the_login(self, api, account_ids):
        account = unique("given-email")
        response = api.post("/v1/account", {
            "account": account, "email": "shown@example.com", "verify": False,
            "imap": {"host": "imap.example.com", "port": 993, "secure": True,
                     "auth": {"user": "login@example.com", "pass": "p"}}})
        account_ids.append(account)
        assert api.get(f"/v1/account/{account}").json["email"] == "shown@example.com", response.body


class TestIgnoredFields:
    def test_create_accepts_emailengine_fields_and_names_each_in_warnings(self, api, dovecot, mail_user,
                                                                        account_ids):
        # Given a registration with EmailEngine's options this API does not have
        account = unique("with-options")
        body = {"account": account, "name": "Options", "email": mail_user.email,
                "path": ["*"], "notifyFrom": "2026-01-01T00:00:00Z", "copy": True, "logs": False,
                "webhooks": "https://hooks.example.com/account", "proxy": "socks5://proxy.example.com:1080",
                "smtpEhloName": "client.example.com", "locale": "et", "tz": "Europe/Tallinn",
                "imap": login(dovecot, mail_user, useAuthServer=False, resyncDelay=900, sentMailPath="Sent")}

        # When it is posted
        response = api.post("/v1/account", body)
        account_ids.append(account)

        # Then the account is registered, and every ignored field is named by its path
        assert response.status == 200, response.body
        assert response.json["account"] == account
        assert warnings_of(response) == ignored(
            "path", "webhooks", "copy", "logs", "notifyFrom", "proxy", "smtpEhloName", "locale", "tz",
            "imap.useAuthServer", "imap.resyncDelay", "imap.sentMailPath")
        stored = api.get(f"/v1/account/{account}").json
        assert "webhooks" not in stored and "path" not in stored

    def test_no_warnings_key_when_nothing_was_ignored(self, api, account_ids):
        account = unique("plain")
        response = api.post("/v1/account", {
            "account": account, "email": "plain@example.com", "verify": False,
            "imap": {"host": "imap.example.com", "port": 993, "secure": True, "auth": {"user": "u", "pass": "p"}}})
        account_ids.append(account)
        assert response.json == {"account": account, "state": "new"}

    @pytest.mark.parametrize(("field", "where"), [("notifyFrm", "notifyFrm"), ("resyncDelai", "imap.resyncDelai")])
    def test_a_typo_is_still_a_400(self, api, field, where):
        imap = {"host": "imap.example.com", "port": 993, "secure": True, "auth": {"user": "u@example.com", "pass": "p"}}
        body = {"account": unique("typo"), "verify": False, "imap": imap}
        if "." in where:
            imap[field] = 900
        else:
            body[field] = "now"
        response = api.post("/v1/account", body)
        assert response.status == 400, response.body
        assert response.json["details"] == {where: "unknown field"}

    def test_update_with_partial_objects_merges_and_warns(self, api, dovecot, postfix, mail_user, account_ids):
        # Given an account with IMAP and SMTP
        account = unique("partial")
        assert api.post("/v1/account", {"account": account, "email": mail_user.email, "imap": login(dovecot, mail_user),
                                        "smtp": {**login(postfix, mail_user, port=postfix.smtp_port)}}).status == 200
        account_ids.append(account)

        # When EmailEngine's update example is sent (partial objects, an IMAP switch)
        response = api.put(f"/v1/account/{account}", {
            "name": "Renamed", "imap": {"partial": True, "disabled": True},
            "smtp": {"partial": True, "host": postfix.hostname}, "logs": True, "syncFrom": None})

        # Then the known fields apply, the rest are named
        assert response.status == 200, response.body
        assert warnings_of(response) == ignored("logs", "syncFrom", "imap.partial", "smtp.partial")
        assert (response.json["name"], response.json["state"], response.json["imap"]["disabled"]) == (
            "Renamed", "disabled", True)

    def test_verify_account_ignores_mailboxes_and_proxy(self, api, dovecot, mail_user):
        response = api.post("/v1/verifyAccount", {"mailboxes": True, "proxy": "http://proxy.example.com",
                                                  "imap": login(dovecot, mail_user)})
        assert response.status == 200, response.body
        assert response.json["imap"]["success"] is True
        assert warnings_of(response) == ignored("mailboxes", "proxy")

    def test_message_move_ignores_source(self, api, account, imap):
        fill(imap, "INBOX", [make_message("to move")])
        imap.create_folder("Moved")
        listed = api.get(f"/v1/account/{account}/messages?path=INBOX").json["messages"]
        response = api.put(f"/v1/account/{account}/message/{listed[0]['id']}/move",
                           {"path": "Moved", "source": "INBOX"})
        assert response.status == 200, response.body
        assert response.json["path"] == "Moved"
        assert warnings_of(response) == ignored("source")

    def test_settings_ignore_what_this_api_lacks(self, api):
        response = api.post("/v1/settings", {"notifyText": False, "trackOpens": True, "serviceUrl": "https://ee.example",
                                             "logs": {"all": False, "maxLogLines": 100}})
        assert response.status == 200, response.body
        assert response.json["updated"] == ["notifyText"]
        assert warnings_of(response) == ignored("serviceUrl", "trackOpens", "logs")
        assert "trackOpens" not in api.get("/v1/settings").json


# EmailEngine's documented request examples for its account endpoints, rewritten as data
# here (own values; {imap}/{smtp} become the test servers' settings). Each: method, path,
# body, the status expected, and the fields expected in warnings.
EMAILENGINE_EXAMPLES = [
    pytest.param("POST", "/v1/account",
                 {"account": "{id}", "name": "Ada Lovelace", "email": "{email}", "imap": "{imap}", "smtp": "{smtp}"},
                 200, [], id="create"),
    pytest.param("POST", "/v1/account",
                 {"account": "{id}", "name": "Getting started", "imap": "{imap}", "smtp": "{smtp}"},
                 200, [], id="create-without-email"),
    pytest.param("POST", "/v1/account",
                 {"account": None, "name": "Generated id", "email": "{email}", "imap": "{imap}"},
                 200, [], id="create-with-null-id"),
    pytest.param("POST", "/v1/account",
                 {"account": "{id}", "name": "Every option", "email": "{email}", "path": ["INBOX", "Sent"],
                  "subconnections": ["Sent"], "webhooks": "https://hooks.example.net/ee", "copy": None,
                  "logs": True, "notifyFrom": "2025-06-01T00:00:00.000Z", "syncFrom": None,
                  "proxy": "http://proxy.example.net:3128", "smtpEhloName": "mx.example.net",
                  "imapIndexer": "full", "webhooksCustomHeaders": [{"key": "X-Team", "value": "mail"}],
                  "locale": "de", "tz": "Europe/Berlin", "expectedEmail": "{email}",
                  "imap": {"$merge": "{imap}", "resyncDelay": 600, "disableIMAP4rev2": True,
                           "draftsMailPath": "Drafts", "junkMailPath": "Junk", "trashMailPath": "Trash",
                           "archiveMailPath": "Archive"},
                  "smtp": {"$merge": "{smtp}", "useAuthServer": False}},
                 200, ["expectedEmail", "path", "subconnections", "copy", "logs", "notifyFrom", "syncFrom", "proxy",
                       "smtpEhloName", "webhooksCustomHeaders", "locale", "tz", "webhooks", "imapIndexer",
                       "imap.disableIMAP4rev2", "imap.resyncDelay", "imap.draftsMailPath", "imap.junkMailPath",
                       "imap.trashMailPath", "imap.archiveMailPath", "smtp.useAuthServer"],
                 id="create-with-every-option"),
    pytest.param("POST", "/v1/account",
                 {"account": "{id}", "name": "Wrong password", "email": "{email}",
                  "imap": {"$merge": "{imap}", "auth": {"user": "{email}", "pass": "not-the-password"}}},
                 422, None, id="create-with-a-wrong-password-is-a-real-error"),
    pytest.param("POST", "/v1/account",
                 {"account": "{id}", "name": "Shared mailbox", "email": "{email}",
                  "oauth2": {"provider": "no-such-app", "auth": {"user": "{email}", "delegatedUser": "shared@x.test"},
                             "refreshToken": "r"}},
                 400, None, id="create-for-a-delegated-mailbox-is-refused"),
    pytest.param("PUT", "/v1/account/{id}",
                 {"name": "Renamed", "email": "{email}", "imap": {"partial": True, "disabled": True},
                  "smtp": {"partial": True, "host": "{smtp_host}"}},
                 200, ["imap.partial", "smtp.partial"], id="update"),
    pytest.param("PUT", "/v1/account/{id}",
                 {"path": ["*"], "notifyFrom": None, "webhooks": "", "locale": "en"},
                 200, ["path", "notifyFrom", "locale"], id="update-with-an-empty-webhook-url-removes-it"),
    pytest.param("POST", "/v1/verifyAccount",
                 {"mailboxes": True, "imap": "{imap}", "smtp": "{smtp}"},
                 200, ["mailboxes"], id="verify"),
]


def fill_in(value, values: dict):
    """The example with {placeholders} replaced; {"$merge": "{imap}", ...} extends a placeholder's object."""
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return values[value[1:-1]]
    if isinstance(value, str):
        return value.format(**values) if "{" in value else value
    if isinstance(value, dict):
        if "$merge" in value:
            base = dict(fill_in(value["$merge"], values))
            return {**base, **{k: fill_in(v, values) for k, v in value.items() if k != "$merge"}}
        return {key: fill_in(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_in(item, values) for item in value]
    return value


@pytest.mark.parametrize(("method", "path", "example", "status", "warned"), EMAILENGINE_EXAMPLES)
def test_emailengine_examples_for_account_endpoints(api, dovecot, postfix, mail_user, account_ids,
                                                    method, path, example, status, warned):
    # Given an existing account for the updates, and EmailEngine's example filled with the test servers
    account = unique("ee-example")
    values = {"id": account, "email": mail_user.email, "smtp_host": postfix.hostname,
              "imap": login(dovecot, mail_user), "smtp": login(postfix, mail_user, port=postfix.smtp_port)}
    if method == "PUT":
        assert api.post("/v1/account", {"account": account, "email": mail_user.email, "imap": values["imap"],
                                        "smtp": values["smtp"]}).status == 200
    account_ids.append(account)

    # When it is sent
    response = api.request(method, path.format(id=account), fill_in(example, values))

    # Then only a real error is refused, and every ignored field is named
    assert response.status == status, response.body
    if response.status == 200:
        assert warnings_of(response) == ignored(*warned)
        if "account" in response.json:
            account_ids.append(response.json["account"])


class TestListFilters:
    @pytest.fixture
    def registered(self, api, account_ids) -> str:
        """Five accounts under one unique tag: three new, two disabled, one named in upper case."""
        tag = secrets.token_hex(4)
        for index in range(5):
            account = f"filter-{tag}-{index}"
            imap = {"host": "imap.example.com", "port": 993, "secure": True, "auth": {"user": "u", "pass": "p"},
                    "disabled": index >= 3}
            response = api.post("/v1/account", {"account": account, "verify": False, "imap": imap,
                                                "name": f"Team {tag.upper()} {index}",
                                                "email": f"box{index}@{tag}.example.com"})
            assert response.status == 200, response.body
            account_ids.append(account)
        return tag

    def ids(self, api, query: str) -> list[str]:
        answer = api.get(f"/v1/accounts?{query}")
        assert answer.status == 200, answer.body
        return [a["account"] for a in answer.json["accounts"]]

    def test_query_matches_id_name_or_email_in_any_case(self, api, registered):
        tag = registered
        everyone = [f"filter-{tag}-{index}" for index in range(5)]
        assert self.ids(api, f"query={tag}&pageSize=100") == everyone  # ids
        assert self.ids(api, f"query=TEAM%20{tag}%201&pageSize=100") == [f"filter-{tag}-1"]  # name, any case
        assert self.ids(api, f"query=BOX4@{tag}&pageSize=100") == [f"filter-{tag}-4"]  # email
        assert self.ids(api, f"query=nothing-{tag}") == []

    def test_state_filters_with_emailengine_names(self, api, registered):
        tag = registered
        new = [f"filter-{tag}-{index}" for index in range(3)]
        disabled = [f"filter-{tag}-{index}" for index in (3, 4)]
        assert self.ids(api, f"query={tag}&state=new") == new
        assert self.ids(api, f"query={tag}&state=init") == new  # EmailEngine's name for it
        assert self.ids(api, f"query={tag}&state=disabled") == disabled
        assert self.ids(api, f"query={tag}&state=paused") == disabled
        assert self.ids(api, f"query={tag}&state=errors") == []
        answer = api.get(f"/v1/accounts?query={tag}&state=paused").json
        assert (answer["state"], answer["query"]) == ("paused", tag)

    def test_pages_count_only_what_matches(self, api, registered):
        tag = registered
        first = api.get(f"/v1/accounts?query={tag}&pageSize=2").json
        last = api.get(f"/v1/accounts?query={tag}&pageSize=2&page=2").json
        assert (first["total"], first["pages"], len(first["accounts"])) == (5, 3, 2)
        assert [a["account"] for a in last["accounts"]] == [f"filter-{tag}-4"]
        filtered = api.get(f"/v1/accounts?query={tag}&state=new&pageSize=2&page=1").json
        assert (filtered["total"], filtered["pages"], [a["account"] for a in filtered["accounts"]]) == (
            3, 2, [f"filter-{tag}-2"])

    def test_an_unknown_state_is_a_400(self, api):
        response = api.get("/v1/accounts?state=sleeping")
        assert response.status == 400 and "query.state" in response.json["details"], response.body

    def test_without_filters_the_echo_says_so(self, api):
        answer = api.get("/v1/accounts?pageSize=1").json
        assert (answer["state"], answer["query"]) == ("*", False)


class TestAccountEvents:
    @pytest.fixture
    def account_events_queue(self, events: EventQueue, monkeypatch) -> EventQueue:
        monkeypatch.setattr(account_events, "get_event_sink", lambda: SqsEventSink(queue_url=events.url))
        return events

    def test_added_and_deleted_are_announced_on_the_events_queue(self, api, dovecot, mail_user,
                                                                account_events_queue):
        # Given a registered account
        account = unique("announced")
        assert api.post("/v1/account", {"account": account, "imap": login(dovecot, mail_user)}).status == 200

        # When it is deleted
        assert api.delete(f"/v1/account/{account}").status == 200

        # Then both events came, in order, in EmailEngine's shape
        found = account_events_queue.wait_for(lambda seen: len(seen) >= 2, what="account events")
        assert [(e.event, e.account, e.data) for e in found] == [
            ("accountAdded", account, {"account": account}), ("accountDeleted", account, {"account": account})]

    def test_a_registration_again_is_a_new_account_with_new_event_ids(self, api, account_events_queue):
        account = unique("twice")
        imap = {"host": "imap.example.com", "port": 993, "secure": True, "auth": {"user": "u@example.com", "pass": "p"}}
        for _ in range(2):
            assert api.post("/v1/account", {"account": account, "verify": False, "imap": imap}).status == 200
            assert api.delete(f"/v1/account/{account}").status == 200
        found = account_events_queue.wait_for(lambda seen: len(seen) >= 4, what="account events")
        assert [e.event for e in found] == ["accountAdded", "accountDeleted"] * 2
        assert len({e.id for e in found}) == 4

    def test_a_refused_registration_announces_nothing(self, api, dovecot, mail_user, account_events_queue):
        response = api.post("/v1/account", {"account": unique("refused"),
                                            "imap": login(dovecot, mail_user) | {"auth": {"user": mail_user.email,
                                                                                          "pass": "wrong"}}})
        assert response.status == 422
        account_events_queue.poll()
        assert account_events_queue.events == []

    def test_webhook_filters_take_the_account_events(self, api):
        response = api.post("/v1/settings", {"webhookEvents": ["accountAdded", "accountDeleted"]})
        try:
            assert response.status == 200, response.body
            assert response.json["settings"]["webhookEvents"] == ["accountAdded", "accountDeleted"]
        finally:
            api.post("/v1/settings", {"webhookEvents": None})
