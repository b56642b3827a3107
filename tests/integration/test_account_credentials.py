"""A stored password never goes to a server the caller just chose.

An update that changes where or how a login is sent (host, port, secure, tls, user) must
carry the password again; otherwise anyone holding a token for the account could point
it at a server of their own and collect the stored password. The servers the account is
pointed at here are the test's own listeners, which record every line they receive.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.support.line_servers import (
    IMAP_GREETING,
    SMTP_GREETING,
    LineServer,
    imap_responder,
    smtp_responder,
)

LOGIN_VERBS = ("LOGIN", "AUTHENTICATE", "AUTH")


@pytest.fixture
def account(api, dovecot, postfix, mail_user) -> str:
    """An account of ``mail_user`` with IMAP (STARTTLS) and SMTP (STARTTLS) on the test servers."""
    account_id = "cred-" + secrets.token_hex(6)
    response = api.post("/v1/account", {
        "account": account_id, "email": mail_user.email,
        "imap": {"host": dovecot.hostname, "port": dovecot.imap_port, "secure": False,
                 "auth": {"user": mail_user.email, "pass": mail_user.password}},
        "smtp": {"host": postfix.hostname, "port": postfix.smtp_port, "secure": False,
                 "auth": {"user": mail_user.email, "pass": mail_user.password}}})
    assert response.status == 200, response.body
    return account_id


@pytest.fixture
def fake_imap() -> Iterator[LineServer]:
    with LineServer(IMAP_GREETING, imap_responder) as server:
        yield server


@pytest.fixture
def fake_smtp() -> Iterator[LineServer]:
    with LineServer(SMTP_GREETING, smtp_responder) as server:
        yield server


def login_lines(server: LineServer) -> list[str]:
    """Lines that carried (or began to carry) a credential: ``tag LOGIN``, ``AUTH PLAIN`` ..."""
    words = [line.split() for line in server.lines]
    return [line for line, parts in zip(server.lines, words, strict=True)
            if any(part.upper() in LOGIN_VERBS for part in parts[:2])]


def expect_credentials_required(response, field: str, changed: str) -> None:
    assert response.status == 422, response.body
    body = response.json
    assert body["code"] == "CredentialsRequired", body
    assert body["details"] == {field: f"required when {changed} changes"}, body


@pytest.mark.parametrize("extra", [{}, {"tls": {"allowPlaintextAuth": True}}, {"verify": False}],
                         ids=["plain", "allowPlaintextAuth", "verify-false"])
class TestNewServerWithoutPassword:
    def test_imap_host_is_refused_and_the_server_hears_nothing(self, api, account, fake_imap, extra):
        # Given: an account on the test Dovecot, and a listener of the caller's choosing
        before = api.get(f"/v1/account/{account}").json
        tls = extra.get("tls")
        update: dict = {"imap": {"host": "127.0.0.1", "port": fake_imap.port, **({"tls": tls} if tls else {})}}
        if "verify" in extra:
            update["verify"] = extra["verify"]
        # When: the account is pointed at it without the password
        response = api.put(f"/v1/account/{account}", update)
        # Then: refused, nothing reached the listener, the account is as it was
        assert response.status == 422, response.body
        assert response.json["code"] == "CredentialsRequired"
        assert set(response.json["details"]) == {"imap.auth.pass"}
        assert "imap.host" in response.json["details"]["imap.auth.pass"]
        assert login_lines(fake_imap) == [] and fake_imap.connections == 0
        assert api.get(f"/v1/account/{account}").json == before

    def test_smtp_host_is_refused_and_the_server_hears_nothing(self, api, account, fake_smtp, extra):
        before = api.get(f"/v1/account/{account}").json
        tls = extra.get("tls")
        update: dict = {"smtp": {"host": "127.0.0.1", "port": fake_smtp.port, **({"tls": tls} if tls else {})}}
        if "verify" in extra:
            update["verify"] = extra["verify"]
        response = api.put(f"/v1/account/{account}", update)
        assert response.status == 422, response.body
        assert response.json["code"] == "CredentialsRequired"
        assert set(response.json["details"]) == {"smtp.auth.pass"}
        assert "smtp.host" in response.json["details"]["smtp.auth.pass"]
        assert login_lines(fake_smtp) == [] and fake_smtp.connections == 0
        assert api.get(f"/v1/account/{account}").json == before


class TestEachDestinationField:
    @pytest.mark.parametrize("protocol", ["imap", "smtp"])
    @pytest.mark.parametrize(("change", "changed"), [
        ({"port": 1143}, "port"),
        ({"secure": True}, "secure"),
        ({"auth": {"user": "someone-else@example.test"}}, "auth.user"),
        ({"tls": {"allowPlaintextAuth": True}}, "tls.allowPlaintextAuth"),
        ({"tls": {"rejectUnauthorized": False}}, "tls.rejectUnauthorized"),
        ({"tls": {"minVersion": "TLSv1.3"}}, "tls.minVersion"),
    ])
    def test_a_change_needs_the_password_again(self, api, account, protocol, change, changed):
        before = api.get(f"/v1/account/{account}").json
        response = api.put(f"/v1/account/{account}", {protocol: change, "verify": False})
        expect_credentials_required(response, f"{protocol}.auth.pass", f"{protocol}.{changed}")
        assert api.get(f"/v1/account/{account}").json == before

    def test_every_changed_field_is_named(self, api, account, fake_imap):
        response = api.put(f"/v1/account/{account}", {"imap": {"host": "127.0.0.1", "port": fake_imap.port,
                                                                "tls": {"allowPlaintextAuth": True}}})
        assert response.status == 422, response.body
        assert response.json["details"] == {
            "imap.auth.pass": "required when imap.host, imap.port and imap.tls.allowPlaintextAuth change"}

    def test_setting_the_current_values_is_not_a_change(self, api, account, dovecot, postfix, mail_user):
        # Given: the account as stored; When: a client sends its settings back without passwords
        stored = api.get(f"/v1/account/{account}").json
        echoed = {protocol: {"host": stored[protocol]["host"], "port": stored[protocol]["port"],
                             "secure": stored[protocol]["secure"], "tls": stored[protocol]["tls"],
                             "auth": {"user": stored[protocol]["auth"]["user"]}}
                  for protocol in ("imap", "smtp")}
        response = api.put(f"/v1/account/{account}", {**echoed, "name": "Renamed"})
        # Then: accepted, and the stored login still works
        assert response.status == 200, response.body
        assert response.json["name"] == "Renamed"
        assert api.get(f"/v1/account/{account}/mailboxes").status == 200


class TestNewServerWithPassword:
    def test_imap_host_change_with_the_password_is_verified_and_saved(self, api, account, dovecot, mail_user):
        # The test certificate names "localhost" only, so reaching it by IP needs rejectUnauthorized: false.
        response = api.put(f"/v1/account/{account}", {"imap": {
            "host": "127.0.0.1", "port": dovecot.imaps_port, "secure": True, "tls": {"rejectUnauthorized": False},
            "auth": {"pass": mail_user.password}}})
        assert response.status == 200, response.body
        assert response.json["imap"]["host"] == "127.0.0.1" and response.json["imap"]["port"] == dovecot.imaps_port
        assert api.get(f"/v1/account/{account}/mailboxes").status == 200

    def test_imap_host_change_with_a_wrong_password_is_verified_and_refused(self, api, account, dovecot):
        before = api.get(f"/v1/account/{account}").json
        response = api.put(f"/v1/account/{account}", {"imap": {
            "host": "127.0.0.1", "tls": {"rejectUnauthorized": False}, "auth": {"pass": "wrong"}}})
        assert response.status == 422 and response.json["code"] == "AuthenticationFailed", response.body
        assert api.get(f"/v1/account/{account}").json == before

    def test_smtp_port_change_with_the_password_is_verified_and_saved(self, api, account, postfix, mail_user):
        response = api.put(f"/v1/account/{account}", {"smtp": {
            "port": postfix.smtps_port, "secure": True, "auth": {"pass": mail_user.password}}})
        assert response.status == 200, response.body
        assert response.json["smtp"]["port"] == postfix.smtps_port and response.json["smtp"]["secure"] is True

    def test_the_password_goes_only_to_the_server_named_with_it(self, api, account, fake_imap, mail_user):
        # A password given with the new host is the caller's own to send: it is verified there.
        response = api.put(f"/v1/account/{account}", {"imap": {
            "host": "127.0.0.1", "port": fake_imap.port, "tls": {"allowPlaintextAuth": True},
            "auth": {"pass": "given-with-the-host"}}})
        assert response.status == 422 and response.json["code"] == "AuthenticationFailed", response.body
        [login] = login_lines(fake_imap)
        assert "given-with-the-host" in login and mail_user.password not in login
