"""The test OAuth2 stack itself: the session Dovecot takes the test authorization server's
bearer tokens (XOAUTH2 and OAUTHBEARER, over IMAP and through Postfix's SASL), refuses bad,
expired, revoked and other users' tokens, and still takes passwords.

These tests use bare imapclient/smtplib, not the application: they prove the ground the
OAuth2 account tests stand on.
"""

from __future__ import annotations

import smtplib
import ssl

import pytest
import requests
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.support.mailservers import HOSTNAME
from tests.support.oauth2_server import basic_auth


def _imaps(dovecot) -> IMAPClient:
    context = ssl.create_default_context(cafile=str(dovecot.pki.ca_file))
    return IMAPClient(HOSTNAME, port=dovecot.imaps_port, ssl=True, ssl_context=context, timeout=10)


def test_imap_xoauth2_and_oauthbearer_logins_with_an_issued_token(dovecot, oauth2_server, mail_user):
    # Given a token the authorization server issued for the user
    token = oauth2_server.issue(mail_user.email)
    # When logging in with it by each mechanism
    with _imaps(dovecot) as client:
        assert client.oauth2_login(mail_user.email, token.access_token) == [b"Logged in"]
        assert client.list_folders()
    with _imaps(dovecot) as client:
        assert client.oauthbearer_login(mail_user.email, token.access_token) == [b"Logged in"]
    # Then Dovecot asked the authorization server, and the password still works beside it
    assert oauth2_server.requests["/introspect"] >= 2
    with _imaps(dovecot) as client:
        client.login(mail_user.email, mail_user.password)


@pytest.mark.parametrize("kind", ["unknown", "expired", "revoked", "other user's"])
def test_imap_refuses_a_token_that_is_not_valid_for_the_user(dovecot, oauth2_server, make_mail_user, kind):
    user, other = make_mail_user(), make_mail_user()
    access_token = {
        "unknown": lambda: "not-a-token",
        "expired": lambda: oauth2_server.issue(user.email, expires_in=0).access_token,
        "revoked": lambda: _revoked(oauth2_server, user.email),
        "other user's": lambda: oauth2_server.issue(other.email).access_token,
    }[kind]()
    with _imaps(dovecot) as client, pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
        client.oauth2_login(user.email, access_token)


def _revoked(oauth2_server, email: str) -> str:
    token = oauth2_server.issue(email)
    oauth2_server.revoke_user(email)
    return token.access_token


def test_refresh_grant_gives_a_token_dovecot_accepts(dovecot, oauth2_server, mail_user):
    # Given an expired access token and its refresh token
    issued = oauth2_server.issue(mail_user.email, expires_in=0)
    # When the client refreshes it at the token endpoint
    answer = requests.post(oauth2_server.token_url, timeout=10,
                           data={"grant_type": "refresh_token", "refresh_token": issued.refresh_token},
                           headers={"Authorization": basic_auth(oauth2_server.client)})
    assert answer.status_code == 200, answer.text
    # Then the new access token logs in, and a revoked refresh token is invalid_grant
    with _imaps(dovecot) as client:
        client.oauth2_login(mail_user.email, answer.json()["access_token"])
    oauth2_server.revoke_user(mail_user.email)
    refused = requests.post(oauth2_server.token_url, timeout=10,
                            data={"grant_type": "refresh_token", "refresh_token": issued.refresh_token},
                            headers={"Authorization": basic_auth(oauth2_server.client)})
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")


def test_postfix_submission_takes_xoauth2_through_dovecot_sasl(postfix, oauth2_server, mail_user):
    token = oauth2_server.issue(mail_user.email)
    login = f"user={mail_user.email}\x01auth=Bearer {token.access_token}\x01\x01"
    context = ssl.create_default_context(cafile=str(postfix.pki.ca_file))
    with smtplib.SMTP(HOSTNAME, postfix.smtp_port, timeout=10) as smtp:
        smtp.starttls(context=context)
        smtp.ehlo()
        assert "XOAUTH2" in smtp.esmtp_features["auth"].split()
        assert smtp.auth("XOAUTH2", lambda challenge=None: login, initial_response_ok=False)[0] == 235
    with smtplib.SMTP(HOSTNAME, postfix.smtp_port, timeout=10) as smtp:
        smtp.starttls(context=context)
        smtp.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.auth("XOAUTH2", lambda challenge=None: "" if challenge else login.replace(token.access_token, "x"),
                      initial_response_ok=False)
