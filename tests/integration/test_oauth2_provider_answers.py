"""Gmail's and Microsoft's answers to a bearer-token login, replayed line for line by scripted servers.

Each provider answer maps to a stable code, keeps the server's words (never the token), is
temporary (503: retry) or permanent (422: a person must act), and moves a watched account to
the state that code means: only ``AuthenticationFailed`` is ``authenticationError``; every
temporary refusal is ``connectError``, retried with backoff.

The lines are the providers' own, as their users have logged them (the Gmail challenge is
base64 of ``{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from chalicelib.errors import MailServerError
from chalicelib.imap import session as imap_session
from chalicelib.security.transport import MailServer, TlsOptions
from chalicelib.smtp import session as smtp_session
from chalicelib.sync.account_state import LoginOutcome
from tests.support.line_servers import LineServer, ScriptedImapLogin, ScriptedSmtpAuth

TOKEN = "ya29.a0AfB_byC" + "x" * 180
GMAIL_CHALLENGE = "eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ=="
GMAIL_CHALLENGE_TEXT = '{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}'
GMAIL_CAPABILITIES = ("IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 XYZZY SASL-IR "
                      "AUTH=XOAUTH2 AUTH=PLAIN AUTH=PLAIN-CLIENTTOKEN AUTH=OAUTHBEARER AUTH=XOAUTH")
EXCHANGE_CAPABILITIES = ("IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT "
                         "CLIENTACCESSRULES CLIENTNETWORKPRESENCELOCATION BACKENDAUTHENTICATE CHILDREN IDLE "
                         "NAMESPACE LITERAL+")
PLAINTEXT = TlsOptions(allow_plaintext_auth=True)


def _server(port: int) -> MailServer:
    return MailServer(host="127.0.0.1", port=port, secure=False, user="someone@example.com", tls=PLAINTEXT,
                      login="oauth2")


def _imap_refusal(answers: Sequence[str], capabilities: str, after_login: str = "{tag} OK done") -> MailServerError:
    script = ScriptedImapLogin(answers, capabilities=capabilities, after_login=after_login)
    with LineServer(script.greeting, script) as server, pytest.raises(MailServerError) as refused:
        imap_session.verify_login(_server(server.port), TOKEN)
    return refused.value


def _smtp_refusal(answers: Sequence[str]) -> MailServerError:
    with LineServer("220 smtp.test ESMTP ready", ScriptedSmtpAuth(answers)) as server, \
            pytest.raises(MailServerError) as refused:
        smtp_session.verify_login(_server(server.port), TOKEN)
    return refused.value


def _watcher_state(error: MailServerError) -> str:
    return LoginOutcome(ok=False, code=error.code, response=error.server_response).state


def _no_token_in(error: MailServerError) -> None:
    assert TOKEN not in str(error) and TOKEN not in repr(error.to_body())


# (answers after the login string, code, HTTP status, watcher state, words the error keeps)
GMAIL_IMAP = {
    "rejected token": (["+ " + GMAIL_CHALLENGE, "{tag} NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)"],
                       "AuthenticationFailed", 422, "authenticationError",
                       "[AUTHENTICATIONFAILED] Invalid credentials (Failure)"),
    "alert: invalid credentials": (["+ " + GMAIL_CHALLENGE, "{tag} NO [ALERT] Invalid credentials (Failure)"],
                                   "AuthenticationFailed", 422, "authenticationError",
                                   "[ALERT] Invalid credentials (Failure)"),
    "alert: web login required": (
        ["{tag} NO [ALERT] Please log in via your web browser: https://support.google.com/mail/accounts/answer/78754 "
         "(Failure)"],
        "AuthenticationFailed", 422, "authenticationError", "Please log in via your web browser"),
    "alert: too many connections": (["{tag} NO [ALERT] Too many simultaneous connections. (Failure)"],
                                    "LoginThrottled", 503, "connectError", "Too many simultaneous connections"),
    "alert: bandwidth limits": (["{tag} NO [ALERT] Account exceeded command or bandwidth limits. (Failure)"],
                                "LoginThrottled", 503, "connectError", "exceeded command or bandwidth limits"),
    "unavailable": (["{tag} NO [UNAVAILABLE] Account is temporarily unavailable."],
                    "AuthenticationUnavailable", 503, "connectError", "Account is temporarily unavailable."),
    # RFC 5530's code for a server fault, as any server may send it to a login.
    "serverbug": (["{tag} NO [SERVERBUG] Internal error occurred."],
                  "AuthenticationUnavailable", 503, "connectError", "[SERVERBUG]"),
    "system error": (["{tag} NO System Error (Failure)"],
                     "AuthenticationUnavailable", 503, "connectError", "System Error (Failure)"),
}


@pytest.mark.parametrize("case", list(GMAIL_IMAP), ids=list(GMAIL_IMAP))
def test_gmail_imap_refusals(case):
    answers, code, status, state, words = GMAIL_IMAP[case]
    # Given: Gmail answering AUTHENTICATE XOAUTH2 the way it does. When: we log in with a token
    error = _imap_refusal(answers, GMAIL_CAPABILITIES)
    # Then: a stable code, the right class, the server's words, never the token
    assert (error.code, error.status, _watcher_state(error)) == (code, status, state)
    assert words in error.details["serverResponse"]
    if answers[0].startswith("+ "):
        assert error.details["authChallenge"] == GMAIL_CHALLENGE_TEXT
    _no_token_in(error)


def test_microsoft_imap_wrong_audience_is_authentication_failed():
    # Given: Exchange Online refusing a token for another audience (graph.microsoft.com): no challenge
    error = _imap_refusal(["{tag} NO AUTHENTICATE failed."], EXCHANGE_CAPABILITIES)
    assert (error.code, error.status, _watcher_state(error)) == ("AuthenticationFailed", 422, "authenticationError")
    assert error.details["serverResponse"] == "AUTHENTICATE failed."
    assert "authChallenge" not in error.details
    _no_token_in(error)


def test_microsoft_imap_authenticated_but_not_connected_is_temporary():
    # Given: Exchange Online accepting the token, then refusing every mailbox command
    # (IMAP turned off for the mailbox, or a backend fault that passes)
    error = _imap_refusal(["{tag} OK AUTHENTICATE completed."], EXCHANGE_CAPABILITIES,
                          after_login="{tag} BAD User is authenticated but not connected.")
    # Then: not the token's fault: a temporary connectError, never authenticationError
    assert (error.code, error.status, _watcher_state(error)) == ("MailboxNotConnected", 503, "connectError")
    assert error.details["serverResponse"] == "User is authenticated but not connected."
    _no_token_in(error)


def test_microsoft_imap_login_that_works_costs_one_probe():
    # Given: Exchange Online that lets the mailbox be used: the probe passes and the session is ours
    script = ScriptedImapLogin(["{tag} OK AUTHENTICATE completed."], capabilities=EXCHANGE_CAPABILITIES)
    with LineServer(script.greeting, script) as server:
        imap_session.verify_login(_server(server.port), TOKEN)
        verbs = [line.split(" ")[1] for line in server.lines if " " in line and line.split(" ")[1].isupper()]
    assert verbs.count("NAMESPACE") == 1


def test_other_servers_get_no_probe():
    script = ScriptedImapLogin(["{tag} OK done"], capabilities=GMAIL_CAPABILITIES,
                               after_login="{tag} BAD not expected")
    with LineServer(script.greeting, script) as server:
        imap_session.verify_login(_server(server.port), TOKEN)
        assert not any(" NAMESPACE" in line for line in server.lines)


GMAIL_SMTP_REFUSAL = ("535-5.7.8 Username and Password not accepted. For more information, go to\n"
                      "535 5.7.8  https://support.google.com/mail/?p=BadCredentials a1-20020a05600c0001sm1 - gsmtp")
SMTP = {
    "gmail: rejected token": (["334 " + GMAIL_CHALLENGE, GMAIL_SMTP_REFUSAL],
                              "AuthenticationFailed", 422, "Username and Password not accepted"),
    "gmail: too many login attempts": (
        ["454-4.7.0 Too many login attempts, please try again later. For more information, go to\n"
         "454 4.7.0  https://support.google.com/mail/?p=LoginAttempts a1-20020a05600c0001sm1 - gsmtp"],
        "LoginThrottled", 503, "Too many login attempts"),
    "gmail: temporary system problem": (
        ["454 4.7.0 Cannot authenticate due to a temporary system problem. Try again later. a1sm1 - gsmtp"],
        "AuthenticationUnavailable", 503, "temporary system problem"),
    "microsoft: rejected token": (
        ["535 5.7.3 Authentication unsuccessful [BN9PR03CA0123.namprd03.prod.outlook.com 2024-05-01T10:00:00.000Z]"],
        "AuthenticationFailed", 422, "5.7.3 Authentication unsuccessful"),
    "microsoft: smtp auth disabled for the tenant": (
        ["535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. "
         "Visit https://aka.ms/smtp_auth_disabled for more information. [MN2PR01CA0001.prod.exchangelabs.com]"],
        "SMTPAuthDisabled", 422, "SmtpClientAuthentication is disabled for the Tenant"),
    "microsoft: security defaults": (
        ["535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults "
         "policy. Contact your administrator. [MN2PR01CA0001.prod.exchangelabs.com]"],
        "SMTPAuthDisabled", 422, "security defaults policy"),
}


@pytest.mark.parametrize("case", list(SMTP), ids=list(SMTP))
def test_smtp_refusals(case):
    answers, code, status, words = SMTP[case]
    error = _smtp_refusal(answers)
    assert (error.code, error.status) == (code, status)
    assert words in error.details["serverResponse"]
    if answers[0].startswith("334 "):
        assert error.details["authChallenge"] == GMAIL_CHALLENGE_TEXT
    _no_token_in(error)
