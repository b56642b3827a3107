"""Accounts whose OAuth2 tokens we manage: registered with a refresh token through an OAuth2
application (``generic`` provider: the tests' own authorization server, Dovecot and Postfix).

Covers: create via refresh token (verified: a token is obtained and used to log in); read and
send; the access token refreshed ahead of expiry and at once after a rejection; a rotated refresh
token saved; a revoked refresh token refused on create and, under a watcher, one
``authenticationError`` then recovery on re-authorization; an outage of the token endpoint being
temporary; two processes refreshing one account at once making one token request.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.security.envelope import open_secret
from chalicelib.services import oauth2_tokens
from chalicelib.services.accounts import load_credentials
from chalicelib.settings import reset_settings
from chalicelib.store import accounts as account_store
from chalicelib.store import oauth2_tokens as token_store
from tests.integration.mail_api_support import make_message
from tests.integration.watcher_support import EventQueue, running_watcher
from tests.support.local_system import ROOT
from tests.support.sending import Mailbox


def _raw(response) -> str:
    return response.body.decode() if isinstance(response.body, bytes) else str(response.body)


@pytest.fixture
def app_id(api, oauth2_server, dovecot, postfix) -> str:
    created = api.post("/v1/oauth2", {
        "name": "Test IdP", "provider": "generic", "clientId": oauth2_server.client.client_id,
        "clientSecret": oauth2_server.client.client_secret, "redirectUrl": "https://api.example.test/oauth",
        "authorizationUrl": oauth2_server.base_url + "/authorize", "tokenUrl": oauth2_server.token_url,
        "scopes": ["mail"],
        "imap": {"host": dovecot.hostname, "port": dovecot.imap_port, "secure": False},
        "smtp": {"host": postfix.hostname, "port": postfix.smtp_port, "secure": False}})
    assert created.status == 200, created.body
    return created.json["id"]


def _register(api, app_id: str, user, refresh_token: str, *, account: str | None = None, **extra):
    body = {"account": account or "om-" + secrets.token_hex(6), "email": user.email, "name": "Managed",
            "oauth2": {"provider": app_id, "auth": {"user": user.email}, "refreshToken": refresh_token}, **extra}
    return api.post("/v1/account", body)


def _sealed_tokens(account: str) -> oauth2_tokens.Tokens:
    return oauth2_tokens.open_tokens(account_store.get_account(account))


def _subjects(events: EventQueue, account: str) -> list[str]:
    return [e.data.get("subject") for e in events.of(account, "messageNew")]


def test_an_account_registered_with_a_refresh_token_reads_and_sends(api, app_id, oauth2_server, dovecot,
                                                                     mail_user, make_mail_user):
    # Given tokens from a finished authorization, and an account registered with its refresh token only
    issued = oauth2_server.issue(mail_user.email)
    before = oauth2_server.requests["/token"]
    created = _register(api, app_id, mail_user, issued.refresh_token)
    assert created.status == 200, created.body
    account = created.json["account"]
    # Then the registration obtained an access token (one token request) and logged in with it
    assert oauth2_server.requests["/token"] == before + 1

    # And reading the account shows the login but never a token
    shown = api.get(f"/v1/account/{account}")
    assert shown.json["oauth2"]["provider"] == app_id
    assert shown.json["oauth2"]["auth"] == {"user": mail_user.email}
    assert shown.json["oauth2"]["scopes"] == ["mail"]
    assert datetime.fromisoformat(shown.json["oauth2"]["expires"]) > datetime.now(UTC) + timedelta(minutes=30)
    assert shown.json["imap"]["host"] == dovecot.hostname and shown.json["imap"]["auth"] == {"user": mail_user.email}
    stored = account_store.get_account(account)
    for secret in (issued.refresh_token, _sealed_tokens(account).access_token):
        assert secret not in _raw(shown) and secret not in _raw(api.get("/v1/accounts?pageSize=1000"))
        assert secret not in json.dumps([stored.imap, stored.smtp, stored.oauth2])

    # When mail arrives, the API lists it (the stored access token, no new token request)
    dovecot.deliver(mail_user.email, make_message("managed-read"))
    listed = api.get(f"/v1/account/{account}/messages?path=INBOX")
    assert listed.status == 200, listed.body
    assert [m["subject"] for m in listed.json["messages"]] == ["managed-read"]
    assert oauth2_server.requests["/token"] == before + 1
    # And it sends through Postfix with the same token
    recipient = make_mail_user()
    sent = api.post(f"/v1/account/{account}/submit", {"to": [{"address": recipient.email}],
                                                     "subject": "managed-send", "text": "Sent.\n"})
    assert sent.status == 200, sent.body
    assert Mailbox(dovecot, recipient).wait_for(sent.json["messageId"])


def test_a_refused_refresh_token_is_refused_on_create(api, app_id, oauth2_server, mail_user):
    issued = oauth2_server.issue(mail_user.email)
    oauth2_server.revoke_user(mail_user.email)
    account = "om-" + secrets.token_hex(6)
    refused = _register(api, app_id, mail_user, issued.refresh_token, account=account)
    assert (refused.status, refused.json["code"]) == (422, "OAuthTokenRevoked"), refused.body
    assert "invalid_grant" in refused.json["details"]["serverResponse"]
    assert issued.refresh_token not in _raw(refused)
    assert api.get(f"/v1/account/{account}").status == 404
    # An unknown application, or imap beside oauth2, are refused before anything is tried
    unknown = _register(api, "app_0000000000000000", mail_user, "rt")
    assert (unknown.status, unknown.json["code"]) == (422, "ValidationError")
    both = _register(api, app_id, mail_user, "rt", imap={"host": "x.example.test", "port": 993,
                                                          "auth": {"user": "u", "pass": "p"}})
    assert both.status == 422, both.body
    # And an application in use cannot be deleted
    used = _register(api, app_id, mail_user, oauth2_server.issue(mail_user.email).refresh_token).json["account"]
    assert api.delete(f"/v1/oauth2/{app_id}").json["code"] == "OAuth2AppInUse"
    assert api.delete(f"/v1/account/{used}").status == 200


def test_a_due_token_is_refreshed_once_and_a_rotated_refresh_token_saved_first(api, app_id, oauth2_server,
                                                                               mail_user):
    # Given an account whose access token expires within the refresh margin, with rotating refresh tokens
    issued = oauth2_server.issue(mail_user.email)
    account = _register(api, app_id, mail_user, issued.refresh_token).json["account"]
    with oauth2_server.rotating_refresh_tokens():
        oauth2_server.expire_access_tokens()
        first = _sealed_tokens(account)
        assert first.refresh_token == issued.refresh_token
        # Mark the stored token due (the server says so too: it expired)
        stored = account_store.get_account(account)
        due = dict(stored.oauth2 or {}, expires=(datetime.now(UTC) + timedelta(seconds=30)).isoformat())
        assert token_store.save_tokens(account, stored.sealed_oauth2 or "", due, expected_sealed=stored.sealed_oauth2)
        before = oauth2_server.requests["/token"]
        # When the API needs the mailbox
        assert api.get(f"/v1/account/{account}/mailboxes").status == 200
        # Then it refreshed once and the rotated refresh token is the stored one
        assert oauth2_server.requests["/token"] == before + 1
        second = _sealed_tokens(account)
        assert second.refresh_token != first.refresh_token
        assert second.access_token != first.access_token and oauth2_server.is_active(second.access_token or "")
        assert api.get(f"/v1/account/{account}/mailboxes").status == 200
        assert oauth2_server.requests["/token"] == before + 1


def test_a_rejected_token_is_refreshed_at_once(api, app_id, oauth2_server, mail_user):
    issued = oauth2_server.issue(mail_user.email)
    account = _register(api, app_id, mail_user, issued.refresh_token).json["account"]
    # Given a stored access token the server no longer takes, though its expiry is an hour away
    oauth2_server.expire_access_tokens()
    before = oauth2_server.requests["/token"]
    # Then the API's login is refused once, refreshes and succeeds
    listed = api.get(f"/v1/account/{account}/mailboxes")
    assert listed.status == 200, listed.body
    assert oauth2_server.requests["/token"] == before + 1


def test_a_token_smtp_refuses_before_its_expiry_is_refreshed_once_while_sending(api, app_id, oauth2_server,
                                                                                  dovecot, mail_user, make_mail_user):
    issued = oauth2_server.issue(mail_user.email)
    account = _register(api, app_id, mail_user, issued.refresh_token).json["account"]
    # Given a stored access token the servers no longer take, though its expiry is an hour away
    oauth2_server.expire_access_tokens()
    before = oauth2_server.requests["/token"]
    # When the account sends
    recipient = make_mail_user()
    sent = api.post(f"/v1/account/{account}/submit", {"to": [{"address": recipient.email}],
                                                     "subject": "refreshed-send", "text": "Sent after a refresh.\n"})
    # Then Postfix's refusal made one refresh, and the message went out with the new token
    assert sent.status == 200, sent.body
    assert Mailbox(dovecot, recipient).wait_for(sent.json["messageId"])
    assert oauth2_server.requests["/token"] == before + 1
    assert oauth2_server.is_active(_sealed_tokens(account).access_token or "")


def test_verify_account_tries_an_application_and_a_refresh_token_and_stores_nothing(api, app_id, oauth2_server,
                                                                                     mail_user, monkeypatch):
    # Four verifications here; the other tests' share of the token's allowance must not make a 429
    monkeypatch.setenv("IMAPLESS_VERIFY_ACCOUNT_PER_MINUTE", "1000")
    reset_settings()
    try:
        _verify_through_an_application(api, app_id, oauth2_server, mail_user)
    finally:
        monkeypatch.undo()
        reset_settings()


def _verify_through_an_application(api, app_id, oauth2_server, mail_user) -> None:
    issued = oauth2_server.issue(mail_user.email)
    accounts_before = api.get("/v1/accounts?pageSize=1000").json["total"]
    before = oauth2_server.requests["/token"]
    body = {"oauth2": {"provider": app_id, "auth": {"user": mail_user.email}, "refreshToken": issued.refresh_token}}
    # When a refresh token is verified through its application
    answer = api.post("/v1/verifyAccount", body)
    # Then an access token was obtained and both of the application's servers took it
    assert answer.status == 200, answer.body
    assert answer.json == {"imap": {"success": True}, "smtp": {"success": True}}
    assert oauth2_server.requests["/token"] == before + 1
    assert issued.refresh_token not in _raw(answer)
    # And nothing was stored
    assert api.get("/v1/accounts?pageSize=1000").json["total"] == accounts_before
    # A revoked refresh token is each server's failure, with the provider's words
    oauth2_server.revoke_user(mail_user.email)
    refused = api.post("/v1/verifyAccount", body)
    assert refused.status == 200, refused.body
    for protocol in ("imap", "smtp"):
        assert (refused.json[protocol]["success"], refused.json[protocol]["code"]) == (False, "OAuthTokenRevoked")
        assert "invalid_grant" in refused.json[protocol]["serverResponse"]
    # An unknown application, or oauth2 beside imap, cannot be verified
    unknown = api.post("/v1/verifyAccount", {"oauth2": {**body["oauth2"], "provider": "app_0000000000000000"}})
    assert (unknown.status, unknown.json["code"]) == (422, "ValidationError"), unknown.body
    both = api.post("/v1/verifyAccount", {**body, "imap": {"host": "x.example.test", "port": 993,
                                                            "auth": {"user": "u", "pass": "p"}}})
    assert both.status == 422, both.body


def test_token_endpoint_outage_is_temporary_for_the_api(api, app_id, oauth2_server, mail_user):
    account = _register(api, app_id, mail_user, oauth2_server.issue(mail_user.email).refresh_token).json["account"]
    oauth2_server.expire_access_tokens()
    with oauth2_server.outage("/token"):
        answer = api.get(f"/v1/account/{account}/mailboxes")
        assert answer.status in (502, 503), answer.body
        assert answer.json["code"] == "AuthenticationUnavailable"
    assert api.get(f"/v1/account/{account}/mailboxes").status == 200
    assert api.get(f"/v1/account/{account}").json["state"] != "authenticationError"


REFRESH_IN_A_PROCESS = """
import sys
import time
from chalicelib.security.envelope import open_secret
from chalicelib.services import oauth2_tokens
from chalicelib.services.accounts import load_credentials
from chalicelib.settings import reset_settings
print(len(oauth2_tokens.access_token(sys.argv[1])))
"""


def test_two_processes_refreshing_one_account_make_one_token_request(api, app_id, oauth2_server, mail_user):
    account = _register(api, app_id, mail_user, oauth2_server.issue(mail_user.email).refresh_token).json["account"]
    # Given an access token that is due (an expiry inside the refresh margin)
    stored = account_store.get_account(account)
    due = dict(stored.oauth2 or {}, expires=(datetime.now(UTC) + timedelta(seconds=10)).isoformat())
    assert token_store.save_tokens(account, stored.sealed_oauth2 or "", due, expected_sealed=stored.sealed_oauth2)
    before = oauth2_server.requests["/token"]
    # When two processes ask for its access token at the same moment
    with oauth2_server.slow_token_answers(1.0):
        runs = [subprocess.Popen([sys.executable, "-c", REFRESH_IN_A_PROCESS, account], cwd=ROOT, env=os.environ,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [run.communicate(timeout=60) for run in runs]
    # Then both got a token, and the token endpoint was asked once
    assert oauth2_server.requests["/token"] == before + 1
    assert all(run.returncode == 0 for run in runs), outputs


# -- under a running watcher ----------------------------------------------------------------------

# The watcher refreshes 2 s ahead of expiry, so a 6 s access token lives long enough to log in with.
SHORT_TOKEN_SECONDS = 6
WATCHER_ENVIRONMENT = {"IMAPLESS_OAUTH2_REFRESH_AHEAD_SECONDS": "2"}


def _count(events: EventQueue, account: str, kind: str) -> int:
    return len(events.of(account, kind))


def _watched(api, app_id, events, user, account: str, refresh_token: str) -> None:
    assert _register(api, app_id, user, refresh_token, account=account).status == 200
    events.wait_for(lambda ev: _count(events, account, "accountInitialized"), timeout=15, what="initialized")


def _no_secret_in(watcher, events: EventQueue, account: str, *secrets_: str | None) -> None:
    log = watcher.log_text(limit=None)
    for secret in filter(None, secrets_):
        assert secret not in log
        assert all(secret not in e.to_json() for e in events.of(account))


def test_the_watcher_refreshes_an_expired_access_token_and_loses_no_mail(api, app_id, oauth2_server, dovecot,
                                                                         make_mail_user, events, prefix):
    user = make_mail_user()
    account = prefix + "expiry"
    lifetime = oauth2_server.access_token_seconds
    oauth2_server.access_token_seconds = SHORT_TOKEN_SECONDS
    try:
        issued = oauth2_server.issue(user.email)
        with running_watcher(events, prefix, prefix + "ns", extra_env=WATCHER_ENVIRONMENT) as watcher:
            # Given a watched account whose access tokens live 6 s
            _watched(api, app_id, events, user, account, issued.refresh_token)
            first = _sealed_tokens(account).access_token
            dovecot.deliver(user.email, make_message("before-expiry"))
            events.wait_for(lambda ev: "before-expiry" in _subjects(events, account), timeout=15, what="first mail")
            before = oauth2_server.requests["/token"]
            # When the token it logged in with has expired and the connection drops
            time.sleep(SHORT_TOKEN_SECONDS + 1)
            assert not oauth2_server.is_active(first or "")
            dovecot.deliver(user.email, make_message("after-expiry"))
            dovecot.kick(user.email)
            # Then it refreshes, logs in again and announces the mail, each message once
            events.wait_for(lambda ev: "after-expiry" in _subjects(events, account), timeout=20,
                            what="mail after the expiry")
            assert oauth2_server.requests["/token"] > before
            assert sorted(_subjects(events, account)) == ["after-expiry", "before-expiry"]
            assert _count(events, account, "authenticationError") == 0
            assert api.get(f"/v1/account/{account}").json["state"] == "connected"
            _no_secret_in(watcher, events, account, issued.refresh_token, issued.access_token, first,
                          _sealed_tokens(account).access_token)
    finally:
        oauth2_server.access_token_seconds = lifetime


def test_a_revoked_refresh_token_is_one_authentication_error_until_reauthorized(
        api, app_id, oauth2_server, dovecot, make_mail_user, events, prefix):
    user = make_mail_user()
    account = prefix + "revoked"
    issued = oauth2_server.issue(user.email)
    with running_watcher(events, prefix, prefix + "ns", extra_env=WATCHER_ENVIRONMENT) as watcher:
        _watched(api, app_id, events, user, account, issued.refresh_token)
        # When the user withdraws consent (every token revoked) and the connection drops
        oauth2_server.revoke_user(user.email)
        dovecot.kick(user.email)
        # Then one authenticationError naming the revocation in the provider's words, and no retry storm
        events.wait_for(lambda ev: _count(events, account, "authenticationError"), timeout=15,
                        what="authenticationError")
        requests_then = oauth2_server.requests["/token"]
        time.sleep(3.0)
        events.poll()
        assert _count(events, account, "authenticationError") == 1
        assert oauth2_server.requests["/token"] - requests_then <= 3  # backed off, not a request a moment
        shown = api.get(f"/v1/account/{account}").json
        assert (shown["state"], shown["lastError"]["code"]) == ("authenticationError", "OAuthTokenRevoked")
        assert "invalid_grant" in shown["lastError"]["serverResponse"]
        assert events.of(account, "authenticationError")[0].data["serverResponseCode"] == "OAuthTokenRevoked"

        # When mail arrives meanwhile and the account is authorized again (a new refresh token)
        dovecot.deliver(user.email, make_message("while-revoked"))
        renewed = oauth2_server.issue(user.email)
        updated = api.put(f"/v1/account/{account}", {"oauth2": {"refreshToken": renewed.refresh_token}})
        assert updated.status == 200, updated.body
        # Then it connects again and announces the mail that arrived meanwhile
        events.wait_for(lambda ev: "while-revoked" in _subjects(events, account), timeout=20,
                        what="mail after re-authorization")
        assert api.get(f"/v1/account/{account}").json["state"] == "connected"
        assert _count(events, account, "authenticationError") == 1
        _no_secret_in(watcher, events, account, issued.refresh_token, renewed.refresh_token, renewed.access_token)


OUTAGE_SECONDS = 30  # as long as the outage the watcher must ride out without an authenticationError


def test_a_token_endpoint_outage_is_temporary_for_the_watcher(api, app_id, oauth2_server, dovecot, make_mail_user,
                                                              events, prefix):
    user = make_mail_user()
    account = prefix + "tokenoutage"
    with running_watcher(events, prefix, prefix + "ns", extra_env=WATCHER_ENVIRONMENT):
        _watched(api, app_id, events, user, account, oauth2_server.issue(user.email).refresh_token)
        # When the access token stops working while the token endpoint is down, for OUTAGE_SECONDS
        oauth2_server.expire_access_tokens()
        started = time.monotonic()
        with oauth2_server.outage("/token"):
            dovecot.kick(user.email)
            events.wait_for(lambda ev: _count(events, account, "connectError"), timeout=15, what="connectError")
            assert api.get(f"/v1/account/{account}").json["lastError"]["code"] == "AuthenticationUnavailable"
            dovecot.deliver(user.email, make_message("during-token-outage"))
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - started)))
        # Then, once it answers again, the watcher refreshes, logs in and announces what arrived
        events.wait_for(lambda ev: "during-token-outage" in _subjects(events, account), timeout=20,
                        what="mail after the outage")
        assert _count(events, account, "authenticationError") == 0
        assert api.get(f"/v1/account/{account}").json["state"] == "connected"


def test_an_application_the_provider_refuses_is_an_authentication_error_on_each_of_its_accounts(
        api, app_id, oauth2_server, dovecot, make_mail_user, events, prefix):
    users = [make_mail_user(), make_mail_user()]
    accounts = [prefix + "appbad0", prefix + "appbad1"]
    with running_watcher(events, prefix, prefix + "ns", extra_env=WATCHER_ENVIRONMENT):
        for user, account in zip(users, accounts, strict=True):
            _watched(api, app_id, events, user, account, oauth2_server.issue(user.email).refresh_token)
        # When the application's client secret is no longer the provider's (rotated at the provider)
        assert api.put(f"/v1/oauth2/{app_id}", {"clientSecret": "not-the-secret"}).status == 200
        oauth2_server.expire_access_tokens()
        # and only the first account has to log in again (the second's connection is still open)
        dovecot.kick(users[0].email)
        # Then every account of the application says so at once, once
        for account in accounts:
            events.wait_for(lambda ev, account=account: _count(events, account, "authenticationError"),
                            timeout=15, what=f"authenticationError of {account}")
            shown = api.get(f"/v1/account/{account}").json
            assert (shown["state"], shown["lastError"]["code"]) == ("authenticationError", "OAuthAppInvalid")
            assert "invalid_client" in shown["lastError"]["serverResponse"]
        # And the API's own reads say the same, as the mail server's failure they are
        answer = api.get(f"/v1/account/{accounts[0]}/mailboxes")
        assert (answer.status, answer.json["code"]) == (502, "OAuthAppInvalid")

        # When the application is fixed with the provider's client secret
        succeeded = {account: _count(events, account, "authenticationSuccess") for account in accounts}
        fixed = api.put(f"/v1/oauth2/{app_id}", {"clientSecret": oauth2_server.client.client_secret})
        assert fixed.status == 200, fixed.body
        # Then every account logs in again and says so
        for account in accounts:
            events.wait_for(lambda ev, account=account: _count(events, account, "authenticationSuccess")
                            > succeeded[account], timeout=30, what=f"authenticationSuccess of {account}")
        for account in accounts:
            assert _count(events, account, "authenticationError") == 1
            deadline = time.monotonic() + 5  # the watcher announces first, then writes the state
            while (shown := api.get(f"/v1/account/{account}").json)["state"] != "connected" \
                    and time.monotonic() < deadline:
                time.sleep(0.1)
            assert shown["state"] == "connected" and "lastError" not in shown, shown


def test_an_application_the_provider_refuses_stops_all_its_accounts_until_it_is_fixed(api, app_id, oauth2_server,
                                                                                     make_mail_user):
    # Given two accounts of one application, used through the API only
    users = [make_mail_user(), make_mail_user()]
    accounts = [_register(api, app_id, user, oauth2_server.issue(user.email).refresh_token).json["account"]
                for user in users]
    # When the provider no longer takes the application's client secret, and the first account refreshes
    assert api.put(f"/v1/oauth2/{app_id}", {"clientSecret": "not-the-secret"}).status == 200
    oauth2_server.expire_access_tokens()
    answer = api.get(f"/v1/account/{accounts[0]}/mailboxes")
    assert (answer.status, answer.json["code"]) == (502, "OAuthAppInvalid"), answer.body
    # Then both accounts are marked at once, the second without having tried
    for account in accounts:
        shown = api.get(f"/v1/account/{account}").json
        assert (shown["state"], shown["lastError"]["code"]) == ("authenticationError", "OAuthAppInvalid"), shown
        assert "invalid_client" in shown["lastError"]["serverResponse"]
    # When the application is fixed with the provider's client secret
    assert api.put(f"/v1/oauth2/{app_id}", {"clientSecret": oauth2_server.client.client_secret}).status == 200
    # Then the accounts may log in again (state new: the watcher reconnects them) and do
    for account in accounts:
        shown = api.get(f"/v1/account/{account}").json
        assert shown["state"] == "new" and "lastError" not in shown, shown
        assert api.get(f"/v1/account/{account}/mailboxes").status == 200


def test_a_password_account_becomes_an_oauth2_one_and_keeps_no_password(api, app_id, oauth2_server, dovecot,
                                                                       mail_user):
    account = "pw-" + secrets.token_hex(6)
    created = api.post("/v1/account", {"account": account, "email": mail_user.email, "imap": {
        "host": dovecot.hostname, "port": dovecot.imap_port, "auth": {"user": mail_user.email,
                                                                      "pass": mail_user.password}}})
    assert created.status == 200, created.body
    # A move to OAuth2 without a refresh token is refused, naming it
    refused = api.put(f"/v1/account/{account}", {"oauth2": {"provider": app_id, "auth": {"user": mail_user.email}}})
    assert (refused.status, refused.json["code"]) == (422, "CredentialsRequired")
    assert "oauth2.refreshToken" in refused.json["details"]
    moved = api.put(f"/v1/account/{account}", {"oauth2": {
        "provider": app_id, "auth": {"user": mail_user.email},
        "refreshToken": oauth2_server.issue(mail_user.email).refresh_token}})
    assert moved.status == 200, moved.body
    assert moved.json["oauth2"]["provider"] == app_id and moved.json["imap"]["auth"] == {"user": mail_user.email}
    stored = account_store.get_account(account)
    assert json.loads(open_secret(stored.sealed_secrets, {"purpose": "account-credentials",
                                                          "account": account})) == {}
    assert load_credentials(account).refreshable
    assert api.get(f"/v1/account/{account}/mailboxes").status == 200
    # Servers of an OAuth2 account come from its application
    assert api.put(f"/v1/account/{account}", {"imap": {"host": "elsewhere.example.test"}}).status == 422
