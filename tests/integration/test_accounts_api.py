"""Registering accounts against the real Dovecot and Postfix, and every way it can fail."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import boto3
import pytest

from tests.support.aws import MOTO_ENDPOINT, REGION
from tests.support.mailservers import Dovecot


def imap_settings(dovecot, user, *, secure=False, host=None, port=None, password=None, **extra):
    return {"host": host or dovecot.hostname, "port": port or (dovecot.imaps_port if secure else dovecot.imap_port),
            "secure": secure, "auth": {"user": user.email, "pass": password or user.password}, **extra}


def smtp_settings(postfix, user, *, secure=False, password=None):
    return {"host": postfix.hostname, "port": postfix.smtps_port if secure else postfix.smtp_port,
            "secure": secure, "auth": {"user": user.email, "pass": password or user.password}}


def register(api, user, imap, smtp=None, **extra):
    body = {"email": user.email, "name": "Test User", "imap": imap, **extra}
    if smtp is not None:
        body["smtp"] = smtp
    return api.post("/v1/account", body)


def expect_failure(response, code: str, protocol: str = "imap") -> dict:
    assert response.status == 422, response.body
    body = response.json
    assert body["code"] == code, body
    assert body["details"]["protocol"] == protocol
    return body


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never says anything (a stalled server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_forever() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


@pytest.fixture(scope="module")
def cleartext_dovecot(test_pki) -> Iterator[Dovecot]:
    """A second Dovecot without TLS: it offers no STARTTLS and takes passwords in cleartext."""
    with Dovecot(test_pki, tls=False) as server:
        yield server


class TestRegistration:
    def test_starttls_account_is_verified_saved_and_usable(self, api, dovecot, mail_user):
        response = register(api, mail_user, imap_settings(dovecot, mail_user))
        assert response.status == 200, response.body
        account_id = response.json["account"]
        assert response.json["state"] == "new"
        assert account_id.startswith("acc_")

        stored = api.get(f"/v1/account/{account_id}").json
        assert stored["email"] == mail_user.email
        assert stored["imap"]["host"] == "localhost"
        assert stored["imap"]["auth"] == {"user": mail_user.email, "pass": "******"}
        assert mail_user.password not in json.dumps(stored)

    def test_implicit_tls_with_smtp_submission(self, api, dovecot, postfix, mail_user):
        response = register(api, mail_user, imap_settings(dovecot, mail_user, secure=True),
                            smtp_settings(postfix, mail_user, secure=True), account="tls-" + mail_user.email[:8])
        assert response.status == 200, response.body
        stored = api.get(f"/v1/account/{response.json['account']}").json
        assert stored["smtp"]["port"] == postfix.smtps_port and stored["smtp"]["auth"]["pass"] == "******"

    def test_smtp_with_starttls(self, api, dovecot, postfix, mail_user):
        response = register(api, mail_user, imap_settings(dovecot, mail_user), smtp_settings(postfix, mail_user))
        assert response.status == 200, response.body

    def test_duplicate_id_is_409(self, api, dovecot, mail_user):
        account_id = "dup-" + mail_user.email.split("@")[0]
        assert register(api, mail_user, imap_settings(dovecot, mail_user), account=account_id).status == 200
        again = register(api, mail_user, imap_settings(dovecot, mail_user), account=account_id)
        assert again.status == 409 and again.json["code"] == "AccountExists"

    def test_password_is_not_in_the_raw_dynamodb_item(self, api, dovecot, postfix, mail_user):
        account_id = "raw-" + mail_user.email.split("@")[0]
        response = register(api, mail_user, imap_settings(dovecot, mail_user), smtp_settings(postfix, mail_user),
                            account=account_id)
        assert response.status == 200, response.body
        dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=MOTO_ENDPOINT)
        item = dynamodb.get_item(TableName="imapless-accounts", Key={"account": {"S": account_id}})["Item"]
        raw = json.dumps(item)
        assert mail_user.password not in raw
        assert "sealed_secrets" in item and '"p":"kms"' in item["sealed_secrets"]["S"]

    def test_verify_false_skips_the_login(self, api, mail_user):
        response = register(api, mail_user, {"host": "imap.example.com", "port": 993, "secure": True,
                                             "auth": {"user": "u", "pass": "p"}}, verify=False)
        assert response.status == 200, response.body


class TestFailureCodes:
    def test_wrong_password(self, api, dovecot, mail_user):
        body = expect_failure(register(api, mail_user, imap_settings(dovecot, mail_user, password="wrong")),
                              "AuthenticationFailed")
        assert "AUTHENTICATIONFAILED" in body["details"]["serverResponse"].upper()
        assert "wrong" not in json.dumps(body)

    def test_wrong_smtp_password(self, api, dovecot, postfix, mail_user):
        body = expect_failure(register(api, mail_user, imap_settings(dovecot, mail_user),
                                       smtp_settings(postfix, mail_user, password="wrong")),
                              "AuthenticationFailed", protocol="smtp")
        assert body["details"]["serverResponse"].startswith("535")

    def test_nothing_is_saved_when_verification_fails(self, api, dovecot, mail_user):
        account_id = "failed-" + mail_user.email.split("@")[0]
        register(api, mail_user, imap_settings(dovecot, mail_user, password="wrong"), account=account_id)
        assert api.get(f"/v1/account/{account_id}").status == 404

    def test_closed_port(self, api, dovecot, mail_user):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]
        expect_failure(register(api, mail_user, imap_settings(dovecot, mail_user, port=closed_port,
                                                              host="127.0.0.1")), "ConnectionRefused")

    def test_host_that_does_not_resolve(self, api, dovecot, mail_user):
        expect_failure(register(api, mail_user, imap_settings(dovecot, mail_user, host="no-such-host.invalid")),
                       "HostNotFound")

    def test_tls_port_spoken_to_in_plaintext(self, api, dovecot, mail_user):
        body = expect_failure(register(api, mail_user, imap_settings(dovecot, mail_user, port=dovecot.imaps_port)),
                              "ConnectionTimeout")
        assert "secure: true" in body["error"]

    def test_plaintext_port_spoken_to_with_tls(self, api, dovecot, mail_user):
        expect_failure(register(api, mail_user, imap_settings(dovecot, mail_user, secure=True,
                                                              port=dovecot.imap_port)), "TLSError")

    def test_certificate_that_does_not_verify(self, api, dovecot, mail_user):
        # The test certificate names "localhost" only; connecting by IP cannot verify it.
        body = expect_failure(register(api, mail_user, imap_settings(dovecot, mail_user, secure=True,
                                                                     host="127.0.0.1")), "TLSError")
        assert "does not verify" in body["error"]

    def test_reject_unauthorized_false_accepts_that_certificate(self, api, dovecot, mail_user):
        response = register(api, mail_user, imap_settings(dovecot, mail_user, secure=True, host="127.0.0.1",
                                                          tls={"rejectUnauthorized": False}))
        assert response.status == 200, response.body

    def test_server_that_is_not_imap(self, api, dovecot, postfix, mail_user):
        body = expect_failure(register(api, mail_user, imap_settings(dovecot, mail_user, port=postfix.smtp_port)),
                              "NoIMAPCapability")
        # Another protocol's banner is not quoted back: host and port are the caller's choice.
        assert "serverResponse" not in body["details"] and "ESMTP" not in json.dumps(body)

    def test_server_that_never_answers(self, api, dovecot, mail_user, silent_server):
        expect_failure(register(api, mail_user, imap_settings(dovecot, mail_user, host="127.0.0.1",
                                                              port=silent_server)), "ConnectionTimeout")

    def test_smtp_port_that_is_not_smtp(self, api, dovecot, mail_user):
        body = {"email": mail_user.email, "imap": imap_settings(dovecot, mail_user),
                "smtp": {"host": dovecot.hostname, "port": dovecot.imap_port, "secure": False,
                         "auth": {"user": mail_user.email, "pass": mail_user.password}}}
        expect_failure(api.post("/v1/account", body), "NoSMTPGreeting", protocol="smtp")

    def test_imap_server_without_starttls_gets_no_password(self, api, cleartext_dovecot, mail_user):
        cleartext_dovecot.add_user(mail_user.email, mail_user.password)
        body = expect_failure(register(api, mail_user, imap_settings(cleartext_dovecot, mail_user)),
                              "TLSUnavailable")
        assert "allowPlaintextAuth" in body["error"]
        # Dovecot logs every login attempt with user=<...>: none was made.
        assert mail_user.email not in cleartext_dovecot.log_path.read_text(errors="replace")

    def test_allow_plaintext_auth_accepts_a_server_without_starttls(self, api, cleartext_dovecot, mail_user):
        cleartext_dovecot.add_user(mail_user.email, mail_user.password)
        response = register(api, mail_user, imap_settings(cleartext_dovecot, mail_user,
                                                          tls={"allowPlaintextAuth": True}))
        assert response.status == 200, response.body

    def test_smtp_server_without_starttls_gets_no_password(self, api, dovecot, postfix, mail_user):
        smtp = {**smtp_settings(postfix, mail_user), "port": postfix.cleartext_smtp_port}
        body = expect_failure(register(api, mail_user, imap_settings(dovecot, mail_user), smtp),
                              "TLSUnavailable", protocol="smtp")
        assert "allowPlaintextAuth" in body["error"]

    def test_allow_plaintext_auth_accepts_smtp_without_starttls(self, api, dovecot, postfix, mail_user):
        smtp = {**smtp_settings(postfix, mail_user), "port": postfix.cleartext_smtp_port,
                "tls": {"allowPlaintextAuth": True}}
        response = register(api, mail_user, imap_settings(dovecot, mail_user), smtp)
        assert response.status == 200, response.body

    @pytest.mark.parametrize("host", ["169.254.169.254", "[fd00:ec2::254]", "fd00:ec2::254"])
    def test_metadata_addresses_are_always_refused(self, api, dovecot, mail_user, host):
        expect_failure(register(api, mail_user, imap_settings(dovecot, mail_user, host=host.strip("[]"))),
                       "HostNotAllowed")

    def test_private_networks_need_the_opt_in(self, api, dovecot, mail_user, monkeypatch):
        from chalicelib.settings import reset_settings

        monkeypatch.setenv("IMAPLESS_ALLOW_PRIVATE_NETWORKS", "false")
        reset_settings()
        try:
            body = expect_failure(register(api, mail_user, imap_settings(dovecot, mail_user)), "HostNotAllowed")
        finally:
            monkeypatch.undo()
            reset_settings()
        assert "IMAPLESS_ALLOW_PRIVATE_NETWORKS" in body["error"]


class TestVerifyAccount:
    def test_reports_each_protocol_without_saving(self, api, dovecot, postfix, mail_user):
        before = api.get("/v1/accounts?pageSize=1000").json["total"]
        response = api.post("/v1/verifyAccount", {
            "imap": imap_settings(dovecot, mail_user),
            "smtp": smtp_settings(postfix, mail_user, password="wrong")})
        assert response.status == 200
        assert response.json["imap"] == {"success": True}
        smtp = response.json["smtp"]
        assert smtp["success"] is False and smtp["code"] == "AuthenticationFailed"
        assert smtp["serverResponse"].startswith("535")
        assert api.get("/v1/accounts?pageSize=1000").json["total"] == before


class TestUpdateListDelete:
    def test_changed_password_is_verified_before_it_is_saved(self, api, dovecot, mail_user):
        account_id = register(api, mail_user, imap_settings(dovecot, mail_user)).json["account"]
        rejected = api.put(f"/v1/account/{account_id}", {"imap": {"auth": {"pass": "wrong"}}})
        assert rejected.status == 422 and rejected.json["code"] == "AuthenticationFailed"
        renamed = api.put(f"/v1/account/{account_id}",
                          {"name": "Renamed", "imap": {"auth": {"pass": mail_user.password}}})
        assert renamed.status == 200, renamed.body
        assert renamed.json["name"] == "Renamed"
        # The stored password still works: the mail API logs in with the saved settings.
        assert api.get(f"/v1/account/{account_id}/mailboxes").status == 200

    def test_partial_update_keeps_other_fields(self, api, dovecot, mail_user):
        account_id = register(api, mail_user, imap_settings(dovecot, mail_user)).json["account"]
        updated = api.put(f"/v1/account/{account_id}", {"name": "Only the name"}).json
        assert updated["email"] == mail_user.email and updated["imap"]["port"] == dovecot.imap_port

    def test_imap_disabled_switch_sets_the_state_and_keeps_the_login(self, api, dovecot, postfix, mail_user):
        # Given: an account registered with IMAP disabled
        imap = {**imap_settings(dovecot, mail_user), "disabled": True}
        created = register(api, mail_user, imap)
        assert created.status == 200 and created.json["state"] == "disabled", created.body
        account_id = created.json["account"]
        assert api.get(f"/v1/account/{account_id}").json["imap"]["disabled"] is True
        # When: it is enabled (no other change: nothing to re-verify); Then: it starts over as "new"
        enabled = api.put(f"/v1/account/{account_id}", {"imap": {"disabled": False}, "verify": True})
        assert enabled.status == 200 and enabled.json["state"] == "new", enabled.body
        assert enabled.json["imap"]["disabled"] is False and enabled.json["imap"]["port"] == dovecot.imap_port
        # ... and a password change while disabled keeps it disabled
        disabled = api.put(f"/v1/account/{account_id}",
                           {"imap": {"disabled": True, "auth": {"pass": mail_user.password}}})
        assert disabled.status == 200 and disabled.json["state"] == "disabled", disabled.body
        # ... while the mail API still works on request
        assert api.get(f"/v1/account/{account_id}/mailboxes").status == 200

    def test_disabled_is_an_imap_switch_only(self, api, dovecot, postfix, mail_user):
        smtp = {"host": postfix.hostname, "port": postfix.smtp_port, "disabled": True,
                "auth": {"user": mail_user.email, "pass": mail_user.password}}
        rejected = register(api, mail_user, imap_settings(dovecot, mail_user), smtp)
        assert rejected.status == 400 and rejected.json["code"] == "ValidationError", rejected.body
        assert rejected.json["details"] == {"smtp.disabled": "unknown field"}

    def test_list_pages(self, api):
        for index in range(3):
            api.post("/v1/account", {"account": f"page-{index}", "email": f"p{index}@example.com", "verify": False,
                                     "imap": {"host": "imap.example.com", "port": 993, "secure": True,
                                              "auth": {"user": "u", "pass": "p"}}})
        first = api.get("/v1/accounts?page=0&pageSize=2").json
        assert len(first["accounts"]) == 2 and first["pages"] == -(-first["total"] // 2)
        beyond = api.get(f"/v1/accounts?page={first['pages']}&pageSize=2").json
        assert beyond["accounts"] == [] and beyond["total"] == first["total"]

    def test_delete_removes_account_and_credentials(self, api, dovecot, mail_user):
        account_id = register(api, mail_user, imap_settings(dovecot, mail_user)).json["account"]
        assert api.delete(f"/v1/account/{account_id}").json == {"deleted": True}
        assert api.get(f"/v1/account/{account_id}").json["code"] == "AccountNotFound"
        dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=MOTO_ENDPOINT)
        assert "Item" not in dynamodb.get_item(TableName="imapless-accounts", Key={"account": {"S": account_id}})
        assert api.delete(f"/v1/account/{account_id}").status == 404
