"""Accounts whose logins are OAuth2 access tokens the caller manages (``auth: {user, accessToken}``),
against the real Dovecot and Postfix of the test OAuth2 stack.

The token is verified on create (a rejected one is 422 ``AuthenticationFailed`` and nothing is
stored), is never shown or echoed, works for reading, sending and watching, and when the server
rejects it later the watcher reports ``authenticationError`` once, until a PUT brings a new token.
"""

from __future__ import annotations

import json
import secrets
import time

import pytest

from chalicelib.store import accounts as account_store
from tests.integration.mail_api_support import make_message
from tests.integration.watcher_support import EventQueue, running_watcher
from tests.support.sending import Mailbox


def _settings(server, port: int, user, token: str) -> dict:
    return {"host": server.hostname, "port": port, "secure": False,
            "auth": {"user": user.email, "accessToken": token}}


def _register(api, dovecot, postfix, user, token: str, *, account: str | None = None, smtp: bool = True,
              verify: bool = True):
    body = {"account": account or "oa-" + secrets.token_hex(6), "email": user.email, "name": "Token User",
            "imap": _settings(dovecot, dovecot.imap_port, user, token), "verify": verify}
    if smtp:
        body["smtp"] = _settings(postfix, postfix.smtp_port, user, token)
    return api.post("/v1/account", body)


def count_of(events: EventQueue, account: str, kind: str) -> int:
    return len(events.of(account, kind))


def _subjects(events: EventQueue, account: str) -> list[str]:
    return [e.data.get("subject") for e in events.of(account, "messageNew")]


def _raw(response) -> str:
    return response.body if isinstance(response.body, str) else json.dumps(response.json)


def test_an_account_with_an_access_token_reads_and_sends(api, dovecot, postfix, oauth2_server, mail_user,
                                                         make_mail_user):
    # Given an account registered with an access token for IMAP and SMTP
    token = oauth2_server.issue(mail_user.email).access_token
    created = _register(api, dovecot, postfix, mail_user, token)
    assert created.status == 200, created.body
    account = created.json["account"]

    # Then reading it shows the kind of login but never the token
    shown = api.get(f"/v1/account/{account}")
    assert shown.json["imap"]["auth"] == {"user": mail_user.email, "accessToken": "******"}
    assert shown.json["smtp"]["auth"] == {"user": mail_user.email, "accessToken": "******"}
    assert token not in _raw(shown) and token not in _raw(api.get("/v1/accounts"))
    assert token not in json.dumps([account_store.get_account(account).imap, account_store.get_account(account).smtp])

    # When mail arrives, the API lists it through an XOAUTH2 login
    dovecot.deliver(mail_user.email, make_message("token-read"))
    listed = api.get(f"/v1/account/{account}/messages?path=INBOX")
    assert listed.status == 200, listed.body
    assert [m["subject"] for m in listed.json["messages"]] == ["token-read"]
    assert f"Login: user=<{mail_user.email}>, method=XOAUTH2" in dovecot.log_text()

    # And it sends through Postfix, which checks the token with Dovecot's SASL
    recipient = make_mail_user()
    sent = api.post(f"/v1/account/{account}/submit", {"to": [{"address": recipient.email}],
                                                     "subject": "token-send", "text": "Sent with a token.\n"})
    assert sent.status == 200, sent.body
    assert Mailbox(dovecot, recipient).wait_for(sent.json["messageId"])


@pytest.mark.parametrize("kind", ["expired", "revoked", "unknown"])
def test_a_rejected_token_is_refused_on_create_and_nothing_is_stored(api, dovecot, postfix, oauth2_server,
                                                                    mail_user, kind):
    token = {"expired": lambda: oauth2_server.issue(mail_user.email, expires_in=0).access_token,
             "revoked": lambda: _revoked(oauth2_server, mail_user.email),
             "unknown": lambda: secrets.token_urlsafe(32)}[kind]()
    account = "oa-" + secrets.token_hex(6)
    refused = _register(api, dovecot, postfix, mail_user, token, account=account, smtp=False)
    assert refused.status == 422, refused.body
    assert refused.json["code"] == "AuthenticationFailed"
    assert '"status":"401"' in refused.json["details"]["authChallenge"]
    assert token not in _raw(refused)
    assert api.get(f"/v1/account/{account}").status == 404


def test_verify_account_tries_an_access_token(api, dovecot, postfix, oauth2_server, mail_user):
    good = oauth2_server.issue(mail_user.email).access_token
    expired = oauth2_server.issue(mail_user.email, expires_in=0).access_token
    answer = api.post("/v1/verifyAccount", {"imap": _settings(dovecot, dovecot.imap_port, mail_user, good),
                                            "smtp": _settings(postfix, postfix.smtp_port, mail_user, expired)})
    assert answer.status == 200, answer.body
    assert answer.json["imap"] == {"success": True}
    assert (answer.json["smtp"]["success"], answer.json["smtp"]["code"]) == (False, "AuthenticationFailed")
    assert good not in _raw(answer) and expired not in _raw(answer)


def _revoked(oauth2_server, email: str) -> str:
    token = oauth2_server.issue(email).access_token
    oauth2_server.revoke_user(email)
    return token


def test_put_replaces_the_token_and_a_new_destination_needs_one(api, dovecot, postfix, oauth2_server, mail_user):
    # Given an account with a token
    first = oauth2_server.issue(mail_user.email).access_token
    account = _register(api, dovecot, postfix, mail_user, first, smtp=False).json["account"]
    # When the caller moves the login elsewhere without the token: refused, naming the token field
    moved = api.put(f"/v1/account/{account}", {"imap": {"port": dovecot.imaps_port, "secure": True}})
    assert (moved.status, moved.json["code"]) == (422, "CredentialsRequired")
    assert "imap.auth.accessToken" in moved.json["details"]
    # When a rejected token is brought: refused, the old one kept
    stale = oauth2_server.issue(mail_user.email, expires_in=0).access_token
    assert api.put(f"/v1/account/{account}", {"imap": {"auth": {"accessToken": stale}}}).status == 422
    # When a new valid token comes with the move: saved, and the account logs in with it
    second = oauth2_server.issue(mail_user.email).access_token
    oauth2_server.revoke_user(mail_user.email)  # the first is dead now; only a fresh one works
    third = oauth2_server.issue(mail_user.email).access_token
    assert second != third
    updated = api.put(f"/v1/account/{account}", {"imap": {"port": dovecot.imaps_port, "secure": True,
                                                           "auth": {"accessToken": third}}})
    assert updated.status == 200, updated.body
    assert api.get(f"/v1/account/{account}/mailboxes").status == 200
    # And the account can go back to a password
    back = api.put(f"/v1/account/{account}", {"imap": {"auth": {"pass": mail_user.password}}})
    assert back.status == 200, back.body
    assert api.get(f"/v1/account/{account}").json["imap"]["auth"] == {"user": mail_user.email, "pass": "******"}


def test_watcher_announces_mail_then_one_authentication_error_when_the_token_dies(
        api, dovecot, oauth2_server, make_mail_user, events, prefix):
    user = make_mail_user()
    account = prefix + "token"
    token = oauth2_server.issue(user.email).access_token
    with running_watcher(events, prefix, prefix + "ns") as watcher:
        # Given a watched account that logs in with an access token
        assert _register(api, dovecot, None, user, token, account=account, smtp=False).status == 200
        events.wait_for(lambda ev: count_of(events, account, "accountInitialized"), timeout=15, what="initialized")
        # When mail arrives: Then it is announced
        dovecot.deliver(user.email, make_message("watched-with-token"))
        events.wait_for(lambda ev: "watched-with-token" in _subjects(events, account), timeout=15,
                        what="messageNew")

        # When the token is revoked and the connection drops: one authenticationError, however
        # often the watcher retries
        oauth2_server.revoke_user(user.email)
        dovecot.kick(user.email)
        events.wait_for(lambda ev: count_of(events, account, "authenticationError"), timeout=15,
                        what="authenticationError")
        time.sleep(3.0)
        events.poll()
        assert count_of(events, account, "authenticationError") == 1
        stored = api.get(f"/v1/account/{account}").json
        assert stored["state"] == "authenticationError"
        assert stored["lastError"]["code"] == "AuthenticationFailed"

        # When the caller brings a new token: the watcher logs in again and announces the mail
        # that arrived meanwhile
        dovecot.deliver(user.email, make_message("while-token-dead"))
        renewed = oauth2_server.issue(user.email).access_token
        assert api.put(f"/v1/account/{account}", {"imap": {"auth": {"accessToken": renewed}}}).status == 200
        events.wait_for(lambda ev: "while-token-dead" in _subjects(events, account), timeout=15,
                        what="mail after the new token")
        assert api.get(f"/v1/account/{account}").json["state"] == "connected"
        log = watcher.log_text(limit=None)
        for secret in (token, renewed):
            assert secret not in log
            assert all(secret not in e.to_json() for e in events.of(account))


def test_watcher_treats_a_token_check_outage_as_temporary(api, dovecot, oauth2_server, make_mail_user, events,
                                                          prefix):
    user = make_mail_user()
    account = prefix + "outage"
    token = oauth2_server.issue(user.email).access_token
    with running_watcher(events, prefix, prefix + "ns"):
        assert _register(api, dovecot, None, user, token, account=account, smtp=False).status == 200
        events.wait_for(lambda ev: count_of(events, account, "accountInitialized"), timeout=15, what="initialized")
        # When Dovecot cannot reach the authorization server (it answers NO [UNAVAILABLE]) and
        # the connection drops: a connectError, never an authenticationError
        with oauth2_server.outage("/introspect"):
            dovecot.kick(user.email)
            events.wait_for(lambda ev: count_of(events, account, "connectError"), timeout=15, what="connectError")
            assert api.get(f"/v1/account/{account}").json["lastError"]["code"] == "AuthenticationUnavailable"
        # Then once it answers again, the same token logs in and nothing was lost
        dovecot.deliver(user.email, make_message("after-outage"))
        events.wait_for(lambda ev: "after-outage" in _subjects(events, account), timeout=15, what="mail after outage")
        assert count_of(events, account, "authenticationError") == 0
        assert api.get(f"/v1/account/{account}").json["state"] == "connected"


@pytest.mark.parametrize(("auth", "field"), [
    ({"user": "u", "pass": "p", "accessToken": "tok"}, "imap.auth.pass"),     # both: the document's oneOf
    ({"user": "u", "accessToken": "not a bearer token"}, "imap.auth.accessToken"),  # the document's pattern
    ({"user": "u", "accessToken": None}, "imap.auth.accessToken"),            # never null
])
def test_auth_that_contradicts_the_document_is_a_400_naming_the_field(api, auth, field):
    answer = api.post("/v1/account", {"email": "u@example.test", "verify": False,
                                      "imap": {"host": "imap.example.test", "port": 993, "auth": auth}})
    assert (answer.status, answer.json["code"]) == (400, "ValidationError"), answer.body
    assert field in answer.json["details"]
    assert "not a bearer token" not in _raw(answer)


def test_the_mail_api_answers_a_token_check_outage_with_503(api, dovecot, oauth2_server, make_mail_user):
    # Given an account with an access token, and no connection of it open yet
    user = make_mail_user()
    created = _register(api, dovecot, None, user, oauth2_server.issue(user.email).access_token, smtp=False)
    assert created.status == 200, created.body
    account = created.json["account"]
    # When Dovecot cannot reach the authorization server while a request logs in
    with oauth2_server.outage("/introspect"):
        answer = api.get(f"/v1/account/{account}/messages?path=INBOX")
    # Then the request says "retry later" (503), not "your settings are wrong" (502)
    assert (answer.status, answer.json["code"]) == (503, "AuthenticationUnavailable"), answer.body
    # And once it answers again, the same token reads the mailbox
    assert api.get(f"/v1/account/{account}/messages?path=INBOX").status == 200
