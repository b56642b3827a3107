"""Hosted authorization: ``POST /v1/authentication/form`` then the browser's round trip through
the tests' own authorization server (PKCE S256 required) back to ``GET /oauth``, which creates or
re-authorizes the account against the real Dovecot and redirects to the form's ``redirectUrl``.

The "browser" follows each 302 by hand: the authorization server is real HTTP; the API's callback
URL is mapped onto the in-process API as API Gateway does (host and stage prefix dropped).
"""

from __future__ import annotations

import http.client
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.services.cursors import deployment_key
from chalicelib.services.oauth2_authorization_state import new_state
from chalicelib.store import accounts as account_store
from tests.integration.mail_api_support import make_message

API_HOST = "https://api.example.test"
BACK = "https://product.example.test/connected?from=imapless"


def _app(api, oauth2_server, dovecot, postfix, redirect_url: str) -> str:
    created = api.post("/v1/oauth2", {
        "name": "Hosted IdP", "provider": "generic", "clientId": oauth2_server.client.client_id,
        "clientSecret": oauth2_server.client.client_secret, "redirectUrl": redirect_url,
        "authorizationUrl": oauth2_server.base_url + "/authorize", "tokenUrl": oauth2_server.token_url,
        "scopes": ["mail"],
        "imap": {"host": dovecot.hostname, "port": dovecot.imap_port, "secure": False},
        "smtp": {"host": postfix.hostname, "port": postfix.smtp_port, "secure": False}})
    assert created.status == 200, created.body
    return created.json["id"]


@pytest.fixture
def app_id(api, oauth2_server, dovecot, postfix) -> str:
    return _app(api, oauth2_server, dovecot, postfix, API_HOST + "/oauth")


def _provider_redirect(url: str) -> str:
    """GET the authorization server's URL; the Location it redirects to."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", f"{parts.path}?{parts.query}")
        response = connection.getresponse()
        response.read()
        assert response.status == 302, response.status
        return response.getheader("Location") or ""
    finally:
        connection.close()


def _callback(api, url: str, stage: str = ""):
    """Call the API at ``url`` as API Gateway would: without host and stage prefix, and without a token."""
    parts = urlsplit(url)
    assert parts.path.startswith(stage + "/oauth"), url
    return api.get(parts.path[len(stage):] + "?" + parts.query, token=None)


def _back(response) -> dict[str, list[str]]:
    assert response.status == 302, response.body
    location = response.headers["location"] if "location" in response.headers else response.headers["Location"]
    assert location.startswith(BACK.split("?")[0] + "?"), location
    return parse_qs(urlsplit(location).query)


def _form(api, app_id: str, account: str, email: str | None, **extra):
    body = {"account": account, "redirectUrl": BACK, "type": app_id, **extra}
    if email is not None:
        body["email"] = email
    return api.post("/v1/authentication/form", body)


def _authorize(api, app_id: str, account: str, email: str | None, stage: str = "") -> dict[str, list[str]]:
    form = _form(api, app_id, account, email, name="Hosted User")
    assert form.status == 200, form.body
    return _back(_callback(api, _provider_redirect(form.json["url"]), stage))


def test_an_account_is_created_through_the_hosted_form_and_reads_mail(api, app_id, oauth2_server, dovecot,
                                                                      mail_user):
    # Given a form for a new account
    account = "hosted-" + secrets.token_hex(4)
    form = _form(api, app_id, account, mail_user.email)
    assert form.status == 200, form.body
    url = form.json["url"]
    query = parse_qs(urlsplit(url).query)
    # Then it leads to the provider's consent page with PKCE S256 and no verifier or secret in it
    assert url.startswith(oauth2_server.base_url + "/authorize?")
    assert query["code_challenge_method"] == ["S256"] and query["redirect_uri"] == [API_HOST + "/oauth"]
    assert "code_verifier" not in query and oauth2_server.client.client_secret not in url

    # When the user consents and the provider sends the browser back to /oauth (no API token)
    back = _back(_callback(api, _provider_redirect(url)))
    # Then the browser lands on the form's redirectUrl with the new account
    assert back == {"from": ["imapless"], "account": [account], "state": ["new"]}
    shown = api.get(f"/v1/account/{account}").json
    assert shown["oauth2"]["auth"] == {"user": mail_user.email}
    # And the account reads mail through the tokens the code was exchanged for
    dovecot.deliver(mail_user.email, make_message("hosted-read"))
    listed = api.get(f"/v1/account/{account}/messages?path=INBOX")
    assert listed.status == 200, listed.body
    assert [m["subject"] for m in listed.json["messages"]] == ["hosted-read"]


def test_an_existing_account_is_re_authorized(api, app_id, oauth2_server, mail_user):
    account = "hosted-" + secrets.token_hex(4)
    assert _authorize(api, app_id, account, mail_user.email)["state"] == ["new"]
    # Given the user revoked every token, the account's refresh token is dead
    oauth2_server.revoke_user(mail_user.email)
    old = account_store.get_account(account).sealed_oauth2
    # When the user authorizes again (no email needed: the account has one)
    back = _authorize(api, app_id, account, None)
    # Then the account is re-authorized with new tokens, and works
    assert back["account"] == [account] and back["state"] == ["existing"]
    assert account_store.get_account(account).sealed_oauth2 != old
    assert api.get(f"/v1/account/{account}/mailboxes").status == 200


def test_a_refused_consent_goes_back_with_its_error(api, app_id, oauth2_server, mail_user):
    account = "hosted-" + secrets.token_hex(4)
    form = _form(api, app_id, account, mail_user.email)
    with oauth2_server.denying_consent():
        location = _provider_redirect(form.json["url"])
    assert _back(_callback(api, location))["error"] == ["access_denied"]
    assert api.get(f"/v1/account/{account}").status == 404


def test_a_state_is_single_use_and_a_forged_one_leads_nowhere(api, app_id, oauth2_server, mail_user):
    account = "hosted-" + secrets.token_hex(4)
    location = _provider_redirect(_form(api, app_id, account, mail_user.email).json["url"])
    assert _back(_callback(api, location))["state"] == ["new"]
    # When the same callback comes again (a replay, a double click)
    assert _back(_callback(api, location))["error"] == ["alreadyUsed"]
    # When the state is tampered with: 422, no redirect anywhere (no destination can be trusted)
    parts = urlsplit(location)
    state = parse_qs(parts.query)["state"][0]
    forged = state[:-2] + ("AA" if not state.endswith("AA") else "BB")
    refused = api.get(f"/oauth?code=x&state={forged}", token=None)
    assert (refused.status, refused.json["code"]) == (422, "InvalidOAuthState"), refused.body
    assert "Location" not in refused.headers and "location" not in refused.headers
    assert api.get("/oauth", token=None).status == 400


def test_an_expired_state_goes_back_with_an_error(api, app_id, mail_user, monkeypatch):
    from chalicelib.services import oauth2_authorization

    account = "hosted-" + secrets.token_hex(4)
    issued = time.time() - oauth2_authorization.AUTHORIZATION_SECONDS - 1
    real_time = time.time
    monkeypatch.setattr(oauth2_authorization.time, "time", lambda: issued)
    form = _form(api, app_id, account, mail_user.email)
    monkeypatch.setattr(oauth2_authorization.time, "time", real_time)
    location = _provider_redirect(form.json["url"])
    assert _back(_callback(api, location))["error"] == ["expired"]
    assert api.get(f"/v1/account/{account}").status == 404


def test_the_token_endpoint_checks_the_pkce_verifier(api, app_id, oauth2_server, mail_user, monkeypatch):
    from chalicelib.services import oauth2_authorization

    # Given a callback whose verifier is not the one the challenge was made from
    account = "hosted-" + secrets.token_hex(4)
    location = _provider_redirect(_form(api, app_id, account, mail_user.email).json["url"])
    monkeypatch.setattr(oauth2_authorization, "pkce_verifier", lambda state_id, key: "w" * 43)
    # Then the authorization server refuses the code and the browser goes back with an error
    assert _back(_callback(api, location))["error"] == ["exchangeFailed"]
    assert api.get(f"/v1/account/{account}").status == 404


def test_behind_a_stage_prefix(api, oauth2_server, dovecot, postfix, mail_user):
    # Given an application whose registered redirect URI carries API Gateway's stage prefix
    redirect = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/oauth"
    app_id = _app(api, oauth2_server, dovecot, postfix, redirect)
    account = "hosted-" + secrets.token_hex(4)
    form = _form(api, app_id, account, mail_user.email)
    location = _provider_redirect(form.json["url"])
    # Then the provider sends the browser to that URL, and the code is exchanged with the same one
    assert location.startswith(redirect + "?")
    assert _back(_callback(api, location, stage="/prod"))["state"] == ["new"]


def test_the_form_checks_its_input(api, app_id):
    missing = _form(api, "app_0000000000000000", "hosted-x", "a@example.test")
    assert (missing.status, missing.json["code"]) == (422, "ValidationError"), missing.body
    no_email = _form(api, app_id, "hosted-" + secrets.token_hex(4), None)
    assert (no_email.status, no_email.json["details"]) == (422, {"email": "required when the account does not "
                                                                          "exist"})
    assert api.post("/v1/authentication/form", {"account": "x", "redirectUrl": BACK, "type": app_id},
                    token=None).status == 401


def test_a_state_signed_with_another_key_is_refused(api):
    state, _ = new_state(time.time(), 600, key=bytes(32) if deployment_key() != bytes(32) else b"\1" * 32)
    refused = api.get(f"/oauth?code=x&state={state}", token=None)
    assert refused.status == 422 and refused.json["code"] == "InvalidOAuthState"
