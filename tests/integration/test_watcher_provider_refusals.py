"""A watched token account whose provider refuses it for a passing reason is a connectError, never
authenticationError, and never "connected": the watcher's reading of Gmail's throttling and of
Exchange Online's ``BAD User is authenticated but not connected.``, from scripted servers.
"""

from __future__ import annotations

import pytest

from chalicelib.store import accounts as account_store
from tests.integration.test_oauth2_provider_answers import EXCHANGE_CAPABILITIES, GMAIL_CAPABILITIES
from tests.integration.watcher_support import running_watcher
from tests.support.line_servers import LineServer, ScriptedImapLogin

SCRIPTS = {
    "gmail-too-many-connections": (
        GMAIL_CAPABILITIES, ["{tag} NO [ALERT] Too many simultaneous connections. (Failure)"],
        "{tag} OK done", "LoginThrottled"),
    "exchange-not-connected": (
        EXCHANGE_CAPABILITIES, ["{tag} OK AUTHENTICATE completed."],
        "{tag} BAD User is authenticated but not connected.", "MailboxNotConnected"),
}


@pytest.mark.parametrize("case", list(SCRIPTS), ids=list(SCRIPTS))
def test_a_temporary_provider_refusal_is_one_connect_error(api, events, prefix, case):
    capabilities, answers, after_login, code = SCRIPTS[case]
    script = ScriptedImapLogin(answers, capabilities=capabilities, after_login=after_login)
    account = prefix + case
    with LineServer(script.greeting, script) as server, running_watcher(events, prefix, prefix + "ns"):
        # Given: a token account on a server that answers as the provider does
        response = api.post("/v1/account", {
            "account": account, "email": "someone@example.test", "verify": False,
            "imap": {"host": "127.0.0.1", "port": server.port, "secure": False, "tls": {"allowPlaintextAuth": True},
                     "auth": {"user": "someone@example.test", "accessToken": "ya29.a0AfB_byC-token"}}})
        assert response.status == 200, response.body
        # When: the watcher logs in (and retries)
        error = events.wait_for_event(account, "connectError", timeout=30)[0]
        events.wait_for(lambda _: server.connections >= 2, timeout=30, what="a retry")
        events.settle()
    # Then: one connectError with the provider's code; never authenticationError, never connected
    assert error.data["serverResponseCode"] == code, error.data
    assert [e.event for e in events.of(account)] == ["connectError"]
    stored = account_store.get_account(account)
    assert stored.state == "connectError"
