"""``GET /v1/account/{account}/oauth-token``: the current access token of an account whose tokens we
manage, against the tests' authorization server, Dovecot and moto.

Off unless enabled (403 ``ApiEndpointDisabled``); only for unbound tokens; refreshes a due token
through the one refresh path first; 409 ``NotAnOAuth2Account`` for password and caller-managed
accounts; never cached by anyone (``Cache-Control: no-store``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.settings import reset_settings
from chalicelib.store import accounts as account_store
from chalicelib.store import oauth2_tokens as token_store
from tests.integration.test_oauth2_accounts import _register as _register_caller_managed
from tests.integration.test_oauth2_managed_tokens import _register, _sealed_tokens, app_id  # noqa: F401 - fixture


@pytest.fixture
def enabled(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("IMAPLESS_OAUTH2_TOKEN_ENDPOINT_ENABLED", "true")
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


def test_the_endpoint_is_off_unless_enabled(api, app_id, oauth2_server, mail_user):  # noqa: F811
    account = _register(api, app_id, mail_user, oauth2_server.issue(mail_user.email).refresh_token).json["account"]
    answer = api.get(f"/v1/account/{account}/oauth-token")
    assert (answer.status, answer.json["code"]) == (403, "ApiEndpointDisabled"), answer.body
    assert "accessToken" not in answer.json


def test_an_unbound_token_gets_the_current_access_token(api, app_id, oauth2_server, mail_user,  # noqa: F811
                                                        enabled, caplog):
    caplog.set_level("DEBUG")
    # Given an account whose tokens we manage
    account = _register(api, app_id, mail_user, oauth2_server.issue(mail_user.email).refresh_token).json["account"]
    before = oauth2_server.requests["/token"]
    caplog.clear()  # (the tests' own authorization server logs what it issues)
    # When an unbound token asks for its access token
    answer = api.get(f"/v1/account/{account}/oauth-token")
    # Then it is the stored one (not due: no token request), usable at the provider, and not cacheable
    assert answer.status == 200, answer.body
    assert answer.headers["Cache-Control"] == "no-store"
    stored = _sealed_tokens(account)
    assert answer.json["accessToken"] == stored.access_token and oauth2_server.is_active(stored.access_token or "")
    assert answer.json["account"] == account and answer.json["user"] == mail_user.email
    assert answer.json["provider"] == app_id and answer.json["scopes"] == ["mail"]
    assert datetime.fromisoformat(answer.json["expires"]) > datetime.now(UTC) + timedelta(minutes=30)
    assert oauth2_server.requests["/token"] == before
    # And the token is in no log line
    assert answer.json["accessToken"] not in caplog.text


def test_a_due_token_is_refreshed_before_it_is_handed_out(api, app_id, oauth2_server, mail_user,  # noqa: F811
                                                          enabled):
    account = _register(api, app_id, mail_user, oauth2_server.issue(mail_user.email).refresh_token).json["account"]
    first = _sealed_tokens(account)
    # Given a stored access token that expires within the refresh margin
    stored = account_store.get_account(account)
    due = dict(stored.oauth2 or {}, expires=(datetime.now(UTC) + timedelta(seconds=30)).isoformat())
    assert token_store.save_tokens(account, stored.sealed_oauth2 or "", due, expected_sealed=stored.sealed_oauth2)
    before = oauth2_server.requests["/token"]
    # When it is asked for
    answer = api.get(f"/v1/account/{account}/oauth-token")
    # Then it was refreshed once, saved, and the new token and its new expiry are handed out
    assert answer.status == 200, answer.body
    assert oauth2_server.requests["/token"] == before + 1
    assert answer.json["accessToken"] != first.access_token
    assert answer.json["accessToken"] == _sealed_tokens(account).access_token
    assert datetime.fromisoformat(answer.json["expires"]) > datetime.now(UTC) + timedelta(minutes=30)


def test_a_revoked_refresh_token_is_a_502_with_its_code(api, app_id, oauth2_server, mail_user,  # noqa: F811
                                                        enabled):
    account = _register(api, app_id, mail_user, oauth2_server.issue(mail_user.email).refresh_token).json["account"]
    stored = account_store.get_account(account)
    due = dict(stored.oauth2 or {}, expires=(datetime.now(UTC) - timedelta(seconds=1)).isoformat())
    assert token_store.save_tokens(account, stored.sealed_oauth2 or "", due, expected_sealed=stored.sealed_oauth2)
    oauth2_server.revoke_user(mail_user.email)
    answer = api.get(f"/v1/account/{account}/oauth-token")
    assert (answer.status, answer.json["code"]) == (502, "OAuthTokenRevoked"), answer.body
    assert "accessToken" not in answer.json


def test_an_account_bound_token_is_refused(api, app_id, oauth2_server, mail_user, enabled):  # noqa: F811
    account = _register(api, app_id, mail_user, oauth2_server.issue(mail_user.email).refresh_token).json["account"]
    bound = api.post("/v1/tokens", {"description": "own account", "scopes": ["api"], "account": account}).json
    answer = api.get(f"/v1/account/{account}/oauth-token", token=bound["token"])
    assert (answer.status, answer.json["code"]) == (403, "Forbidden"), answer.body
    assert "accessToken" not in answer.json
    assert api.delete(f"/v1/tokens/{bound['id']}").status == 200


def test_password_and_caller_managed_accounts_have_no_token_to_hand_out(api, account, dovecot, postfix,
                                                                       oauth2_server, mail_user, make_mail_user,
                                                                       enabled):
    # A password account
    answer = api.get(f"/v1/account/{account}/oauth-token")
    assert (answer.status, answer.json["code"]) == (409, "NotAnOAuth2Account"), answer.body
    assert "password" in answer.json["error"]
    # An account whose access token the caller manages
    user = make_mail_user()
    managed = _register_caller_managed(api, dovecot, postfix, user, oauth2_server.issue(user.email).access_token)
    assert managed.status == 200, managed.body
    answer = api.get(f"/v1/account/{managed.json['account']}/oauth-token")
    assert (answer.status, answer.json["code"]) == (409, "NotAnOAuth2Account"), answer.body
    assert "accessToken" not in answer.json
    # And an unknown account
    missing = api.get("/v1/account/no-such-account/oauth-token")
    assert (missing.status, missing.json["code"]) == (404, "AccountNotFound"), missing.body
