"""The IMAP and SMTP adapters log in with an OAuth2 access token (XOAUTH2) when the server's
``login`` is ``oauth2``, against the real Dovecot and Postfix of the test OAuth2 stack.

A rejected token is ``AuthenticationFailed`` with the server's JSON challenge in the details;
an authorization server that cannot answer is the temporary ``AuthenticationUnavailable``;
the token itself appears in no error.
"""

from __future__ import annotations

import pytest

from chalicelib.errors import MailServerError
from chalicelib.imap import session as imap_session
from chalicelib.security.transport import MailServer
from chalicelib.smtp import session as smtp_session
from tests.support.mailservers import HOSTNAME


def _imap(dovecot, user) -> MailServer:
    return MailServer(host=HOSTNAME, port=dovecot.imaps_port, secure=True, user=user.email, login="oauth2")


def _smtp(postfix, user) -> MailServer:
    return MailServer(host=HOSTNAME, port=postfix.smtp_port, secure=False, user=user.email, login="oauth2")


def _no_token_in(error: MailServerError, token: str) -> None:
    assert token not in str(error) and token not in repr(error.details)


def test_imap_session_logs_in_with_an_access_token(dovecot, oauth2_server, mail_user):
    token = oauth2_server.issue(mail_user.email)
    with imap_session.open_session(_imap(dovecot, mail_user), token.access_token) as session:
        assert session.select("INBOX").uid_validity > 0
    assert f"Login: user=<{mail_user.email}>, method=XOAUTH2" in dovecot.log_text()


@pytest.mark.parametrize("kind", ["expired", "revoked"])
def test_imap_refused_token_is_authentication_failed_with_the_challenge(dovecot, oauth2_server, mail_user, kind):
    token = oauth2_server.issue(mail_user.email, expires_in=0 if kind == "expired" else 3600)
    if kind == "revoked":
        oauth2_server.revoke_user(mail_user.email)
    with pytest.raises(MailServerError) as refused:
        imap_session.verify_login(_imap(dovecot, mail_user), token.access_token)
    assert refused.value.code == "AuthenticationFailed"
    assert refused.value.details["serverResponse"].startswith("[AUTHENTICATIONFAILED]")
    assert '"status":"401"' in refused.value.details["authChallenge"]
    _no_token_in(refused.value, token.access_token)


def test_imap_token_check_outage_is_temporary(dovecot, oauth2_server, mail_user):
    token = oauth2_server.issue(mail_user.email)
    with oauth2_server.outage("/introspect"), pytest.raises(MailServerError) as unavailable:
        imap_session.verify_login(_imap(dovecot, mail_user), token.access_token)
    assert (unavailable.value.code, unavailable.value.status) == ("AuthenticationUnavailable", 503)
    assert unavailable.value.details["serverResponse"].startswith("[UNAVAILABLE]")


@pytest.mark.parametrize("length", [43, 2500, 3000, 9000])
def test_smtp_session_logs_in_with_an_access_token(postfix, oauth2_server, mail_user, length):
    # A 2,500-character token: Postfix refuses a login string that long on the AUTH line
    # ("535 Invalid base64 data"), so it must go after the 334 prompt; there it takes a
    # Microsoft-sized 3,000 and more.
    token = oauth2_server.issue(mail_user.email, length=length)
    smtp_session.verify_login(_smtp(postfix, mail_user), token.access_token)


def test_smtp_token_past_the_servers_limit_is_a_clear_error(postfix, oauth2_server, mail_user):
    # Given: a 16,000-character token; Postfix: "500 5.5.6 SASL response limit exceeded"
    token = oauth2_server.issue(mail_user.email, length=16_000)
    with pytest.raises(MailServerError) as refused:
        smtp_session.verify_login(_smtp(postfix, mail_user), token.access_token)
    # Then: its own code, not AuthenticationFailed (the token may be good; it is too long here)
    assert (refused.value.code, refused.value.status) == ("AccessTokenTooLarge", 422)
    assert "SASL response limit exceeded" in refused.value.details["serverResponse"]
    _no_token_in(refused.value, token.access_token)


def test_smtp_refused_token_is_authentication_failed_with_the_challenge(postfix, oauth2_server, mail_user):
    token = oauth2_server.issue(mail_user.email, expires_in=0)
    with pytest.raises(MailServerError) as refused:
        smtp_session.verify_login(_smtp(postfix, mail_user), token.access_token)
    assert refused.value.code == "AuthenticationFailed"
    assert refused.value.details["serverResponse"].startswith("535")
    assert '"status":"401"' in refused.value.details["authChallenge"]
    _no_token_in(refused.value, token.access_token)


def test_a_password_login_is_unchanged_beside_tokens(dovecot, postfix, mail_user):
    imap_session.verify_login(MailServer(host=HOSTNAME, port=dovecot.imaps_port, secure=True, user=mail_user.email),
                              mail_user.password)
    smtp_session.verify_login(MailServer(host=HOSTNAME, port=postfix.smtp_port, secure=False, user=mail_user.email),
                              mail_user.password)
    assert f"Login: user=<{mail_user.email}>, method=PLAIN" in dovecot.log_text()


@pytest.mark.parametrize("length", [3000, 6000])
def test_imap_session_logs_in_with_a_microsoft_sized_token(dovecot, oauth2_server, mail_user, length):
    # Microsoft's access tokens are JWTs of 1.5-3 KB (more with many groups): imaplib sends the
    # login string after the "+" continuation, a line Dovecot takes up to its limit.
    token = oauth2_server.issue(mail_user.email, length=length)
    with imap_session.open_session(_imap(dovecot, mail_user), token.access_token) as session:
        assert session.select("INBOX").uid_validity > 0


def test_imap_token_past_the_servers_line_limit_is_a_clear_error(dovecot, oauth2_server, mail_user):
    # Given: an 8,000-character token (the API takes up to 8,192); Dovecot silently closes the
    # connection on a line over 8 KB, and this one is 10.7 KB in base64
    token = oauth2_server.issue(mail_user.email, length=8_000)
    with pytest.raises(MailServerError) as refused:
        imap_session.verify_login(_imap(dovecot, mail_user), token.access_token)
    # Then: a permanent 4xx naming the cause, not a dropped connection to retry
    assert (refused.value.code, refused.value.status) == ("AccessTokenTooLarge", 422)
    _no_token_in(refused.value, token.access_token)
