"""The client side of a SASL bearer login (chalicelib/security/bearer.py), fed the challenges
Gmail and Dovecot send, and the schema's rules for an access token."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chalicelib.schemas.accounts import AccountCreate, ServerAuth, ServerAuthUpdate
from chalicelib.security.bearer import BearerExchange, choose_mechanism, login_string
from chalicelib.services.accounts import AccountCredentials

TOKEN = "ya29.a0AfB_byC-token_value"
# What Gmail and Dovecot send (base64-decoded by imaplib/smtplib) before their NO / 535.
GMAIL_CHALLENGE = b'{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}'


@pytest.mark.parametrize(("offered", "chosen"), [
    (["PLAIN", "XOAUTH2", "OAUTHBEARER"], "XOAUTH2"),
    (["PLAIN", "OAUTHBEARER"], "OAUTHBEARER"),
    (["plain", "oauthbearer"], "OAUTHBEARER"),
    ([], "XOAUTH2"),  # Microsoft's SMTP before STARTTLS names nothing: try XOAUTH2
])
def test_mechanism_prefers_xoauth2(offered, chosen):
    assert choose_mechanism(offered) == chosen


def test_login_strings_are_the_documented_forms():
    assert login_string("XOAUTH2", "u@example.com", TOKEN) == f"user=u@example.com\x01auth=Bearer {TOKEN}\x01\x01"
    # RFC 7628: "," and "=" in the authzid are escaped in the GS2 header
    assert login_string("OAUTHBEARER", "a,b=c", TOKEN) == f"n,a=a=2Cb=3Dc,\x01auth=Bearer {TOKEN}\x01\x01"


def test_exchange_sends_the_token_once_and_keeps_the_error_challenge():
    exchange = BearerExchange("XOAUTH2", "u@example.com", TOKEN)
    assert TOKEN in exchange(b"")                   # the server's empty "+"
    assert exchange(GMAIL_CHALLENGE) == ""          # the error: answered with an empty line, never the token again
    assert exchange.challenge == GMAIL_CHALLENGE.decode()
    assert TOKEN not in repr(exchange)


def test_exchange_keeps_no_challenge_that_is_not_short_text():
    exchange = BearerExchange("XOAUTH2", "u", TOKEN)
    exchange(None)  # SMTP's initial response
    exchange(b"\xff\x00binary")
    assert exchange.challenge is None


def test_auth_takes_a_password_or_an_access_token_but_not_both():
    assert ServerAuth.model_validate({"user": "u", "accessToken": TOKEN}).accessToken is not None
    for body in ({"user": "u"}, {"user": "u", "pass": "p", "accessToken": TOKEN}):
        with pytest.raises(ValidationError):
            ServerAuth.model_validate(body)
    with pytest.raises(ValidationError):
        ServerAuthUpdate.model_validate({"pass": "p", "accessToken": TOKEN})
    assert ServerAuthUpdate.model_validate({"accessToken": TOKEN}).password is None


@pytest.mark.parametrize("token", ["has space", "a\x01auth=Bearer x", "line\r\nbreak", "", "x" * 8193])
def test_access_token_must_be_a_bearer_token(token):
    with pytest.raises(ValidationError):
        ServerAuth.model_validate({"user": "u", "accessToken": token})


def test_user_cannot_split_the_login_string():
    with pytest.raises(ValidationError):
        ServerAuth.model_validate({"user": "u\x01auth=Bearer x", "accessToken": TOKEN})


def test_a_validation_error_never_quotes_the_token():
    with pytest.raises(ValidationError) as refused:
        AccountCreate.model_validate({"email": "u@example.com", "imap": {
            "host": "imap.example.com", "port": 993, "auth": {"user": "u", "pass": "p", "accessToken": TOKEN}}})
    assert TOKEN not in str(refused.value.errors(include_input=False, include_url=False))


def test_account_credentials_never_show_their_secrets():
    credentials = AccountCredentials(account="a", imap=None, imap_secret=TOKEN, smtp=None, smtp_secret="pw-secret")
    assert TOKEN not in repr(credentials) and "pw-secret" not in repr(credentials)
