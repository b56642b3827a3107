"""``POST /v1/verifyAccount`` is a login check, not a port scanner.

It connects wherever the caller says, so: only unbound tokens may call it, each token has a
per-minute allowance (a counter in DynamoDB, shared by every API process), and what a
remote server said is echoed only when it spoke IMAP or SMTP, so an SSH or HTTP banner
of an internal host never comes back to the caller.
"""

from __future__ import annotations

import json
import math
import secrets
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from chalicelib.settings import get_settings, reset_settings
from tests.support.aws import MOTO_ENDPOINT, REGION
from tests.support.line_servers import HTTP_ANSWER, SSH_BANNER, LineServer

VERIFY = "/v1/verifyAccount"


@pytest.fixture
def created_token(api) -> dict:
    """A fresh unbound ``api`` token (``{id, token}``): its allowance is the test's own."""
    created = api.post("/v1/tokens", {"description": "verify", "scopes": ["api"]})
    assert created.status == 200, created.body
    return created.json


@pytest.fixture
def api_token(created_token) -> str:
    return created_token["token"]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def verify_limit(monkeypatch) -> Iterator:
    """Sets ``IMAPLESS_VERIFY_ACCOUNT_PER_MINUTE`` for one test."""

    def set_limit(limit: int) -> None:
        monkeypatch.setenv("IMAPLESS_VERIFY_ACCOUNT_PER_MINUTE", str(limit))
        reset_settings()

    yield set_limit
    monkeypatch.undo()
    reset_settings()


def settings_for(host: str, port: int, **extra) -> dict:
    return {"host": host, "port": port, "secure": False, "auth": {"user": "u@example.test", "pass": "pw"}, **extra}


def start_of_a_fresh_window(margin_seconds: float = 5.0) -> None:
    """Wait out the last seconds of a minute, so a burst of calls falls into one window."""
    into = time.time() % 60
    if into > 60 - margin_seconds:
        time.sleep(60 - into + 0.1)


class TestWhoMayCall:
    def test_an_account_bound_token_may_not_verify(self, api, closed_port):
        api.post("/v1/account", {"account": "verify-bound", "email": "v@example.test", "verify": False,
                                 "imap": settings_for("imap.example.com", 993)})
        token = api.post("/v1/tokens", {"description": "bound", "scopes": ["api"], "account": "verify-bound"})
        response = api.post(VERIFY, {"imap": settings_for("127.0.0.1", closed_port)}, token=token.json["token"])
        assert response.status == 403, response.body
        assert response.json["code"] == "Forbidden"


class TestRateLimit:
    def test_the_eleventh_call_in_a_minute_is_429_with_retry_after(self, api, api_token, closed_port):
        # Given: a token that has not verified anything yet, at the start of a window
        start_of_a_fresh_window()
        body = {"imap": settings_for("127.0.0.1", closed_port)}
        # When: it verifies eleven times in a row
        answers = [api.post(VERIFY, body, token=api_token) for _ in range(11)]
        # Then: the first ten are answered, the eleventh is refused until the minute is over
        assert [a.status for a in answers] == [200] * 10 + [429], [a.body for a in answers]
        assert all(a.json["imap"]["code"] == "ConnectionRefused" for a in answers[:10])
        refused = answers[-1]
        assert refused.json["code"] == "RateLimited" and refused.json["statusCode"] == 429
        assert isinstance(refused.json["error"], str) and refused.json["error"]
        retry_after = int(refused.headers["Retry-After"])
        assert 1 <= retry_after <= 60
        assert retry_after == refused.json["details"]["retryAfter"]
        assert retry_after >= math.floor(60 - time.time() % 60) - 1

    def test_each_token_has_its_own_allowance(self, api, api_token, closed_port, verify_limit):
        verify_limit(1)
        start_of_a_fresh_window()
        body = {"imap": settings_for("127.0.0.1", closed_port)}
        assert api.post(VERIFY, body, token=api_token).status == 200
        assert api.post(VERIFY, body, token=api_token).status == 429
        other = api.post("/v1/tokens", {"description": "other", "scopes": ["api"]}).json["token"]
        assert api.post(VERIFY, body, token=other).status == 200

    def test_the_limit_is_a_setting_and_the_count_is_kept_in_dynamodb(self, api, created_token, closed_port,
                                                                      verify_limit):
        # Given: a limit of 3 per minute
        verify_limit(3)
        start_of_a_fresh_window()
        body = {"imap": settings_for("127.0.0.1", closed_port)}
        # When: a token calls five times
        statuses = [api.post(VERIFY, body, token=created_token["token"]).status for _ in range(5)]
        # Then: the fourth and fifth are refused, and the allowed calls were counted in the
        # shared table (what every API process reads), refused ones not
        assert statuses == [200, 200, 200, 429, 429]
        dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=MOTO_ENDPOINT)
        items = dynamodb.scan(TableName=get_settings().table_name("rate-limits"))["Items"]
        [counter] = [item for item in items if created_token["id"] in item["key"]["S"]]
        assert counter["hits"] == {"N": "3"}
        assert time.time() < int(counter["expiresAt"]["N"]) <= time.time() + 3 * 60

    def test_invalid_bodies_do_not_use_the_allowance(self, api, api_token, closed_port, verify_limit):
        verify_limit(1)
        start_of_a_fresh_window()
        assert api.post(VERIFY, {"imap": {"host": "x"}}, token=api_token).status == 400
        assert api.post(VERIFY, {"imap": settings_for("127.0.0.1", closed_port)}, token=api_token).status == 200


    def test_a_bound_token_cannot_probe_through_account_updates_either(self, api, closed_port, verify_limit):
        # Given: an account-bound token and an allowance of 2 verifications a minute
        verify_limit(2)
        start_of_a_fresh_window()
        api.post("/v1/account", {"account": "verify-put", "email": "v@example.test", "verify": False,
                                 "imap": settings_for("imap.example.com", 993)})
        token = api.post("/v1/tokens", {"description": "bound", "scopes": ["api"], "account": "verify-put"})
        bound = token.json["token"]
        # When: it points its own account at a new server (password included) three times
        body = {"imap": settings_for("127.0.0.1", closed_port)}
        answers = [api.put("/v1/account/verify-put", body, token=bound) for _ in range(3)]
        # Then: each of the first two connects and reports the refused port, the third is
        # refused before connecting: a PUT is no way around the allowance
        assert [a.json["code"] for a in answers] == ["ConnectionRefused", "ConnectionRefused", "RateLimited"]
        assert answers[-1].status == 429 and 1 <= int(answers[-1].headers["Retry-After"]) <= 60
        # And: an unbound token editing accounts (an operator's migration) is not metered
        assert api.put("/v1/account/verify-put", body).json["code"] == "ConnectionRefused"


class TestSharedCounter:
    """The store's counter against DynamoDB (moto), with the clock given."""

    def test_refused_calls_are_not_counted_and_the_next_window_starts_from_zero(self, aws_resources):
        from chalicelib.store.rate_limits import take

        subject = "tok_" + secrets.token_hex(4)
        window_start = 1_764_000_000

        def call(at: float):
            return take("test", subject, limit=2, window_seconds=60, now=window_start + at)

        assert [call(at).allowed for at in (0.5, 10, 20, 59.9)] == [True, True, False, False]
        assert call(59.9).retry_after == 1
        assert call(60.0).allowed  # a new minute

    def test_concurrent_callers_never_exceed_the_limit(self, aws_resources):
        from chalicelib.store.rate_limits import take

        subject = "tok_" + secrets.token_hex(4)
        now = time.time()
        with ThreadPoolExecutor(max_workers=8) as pool:
            decisions = list(pool.map(lambda _: take("test", subject, limit=5, window_seconds=3600, now=now),
                                      range(24)))
        assert sum(d.allowed for d in decisions) == 5


class TestWhatIsEchoed:
    @pytest.mark.parametrize("protocol", ["imap", "smtp"])
    @pytest.mark.parametrize("banner", [SSH_BANNER, HTTP_ANSWER], ids=["ssh", "http"])
    def test_a_banner_of_another_protocol_is_not_echoed(self, api, api_token, protocol, banner):
        # Given: a port that answers with something that is not IMAP or SMTP
        with LineServer(banner) as server:
            # When: a caller verifies against it
            response = api.post(VERIFY, {protocol: settings_for("127.0.0.1", server.port)}, token=api_token)
        # Then: the failure has its code, but nothing of what the port said
        assert response.status == 200, response.body
        result = response.json[protocol]
        assert result["success"] is False
        assert result["code"] == ("NoIMAPCapability" if protocol == "imap" else "NoSMTPGreeting")
        assert "serverResponse" not in result
        for fragment in ("OpenSSH", "SSH-2.0", "HTTP/1.1", "Bad Request", "2.0-", "/1.1"):
            assert fragment not in response.body.decode(), response.body

    def test_registration_does_not_echo_it_either(self, api):
        with LineServer(SSH_BANNER) as server:
            response = api.post("/v1/account", {"email": "scan@example.test",
                                                "imap": settings_for("127.0.0.1", server.port)})
        assert response.status == 422 and response.json["code"] == "NoIMAPCapability", response.body
        assert "serverResponse" not in response.json["details"]
        assert "OpenSSH" not in response.body.decode()

    def test_an_imap_refusal_is_echoed(self, api, api_token):
        with LineServer("* BYE [UNAVAILABLE] Too many connections") as server:
            response = api.post(VERIFY, {"imap": settings_for("127.0.0.1", server.port)}, token=api_token)
        result = response.json["imap"]
        assert result["success"] is False and result["code"] == "NoIMAPCapability"
        assert result["serverResponse"] == "* BYE [UNAVAILABLE] Too many connections"

    def test_an_smtp_refusal_is_echoed(self, api, api_token):
        with LineServer("554 5.7.1 No service for you") as server:
            response = api.post(VERIFY, {"smtp": settings_for("127.0.0.1", server.port)}, token=api_token)
        result = response.json["smtp"]
        assert result["success"] is False and result["code"] == "NoSMTPGreeting"
        assert result["serverResponse"] == "554 5.7.1 No service for you"

    def test_dovecot_refusing_a_password_is_still_quoted(self, api, api_token, dovecot, postfix, mail_user):
        response = api.post(VERIFY, {
            "imap": {"host": dovecot.hostname, "port": dovecot.imap_port, "secure": False,
                     "auth": {"user": mail_user.email, "pass": "wrong"}},
            "smtp": {"host": postfix.hostname, "port": postfix.smtp_port, "secure": False,
                     "auth": {"user": mail_user.email, "pass": "wrong"}}}, token=api_token)
        assert response.status == 200, response.body
        imap, smtp = response.json["imap"], response.json["smtp"]
        assert imap["code"] == "AuthenticationFailed" and "AUTHENTICATIONFAILED" in imap["serverResponse"].upper()
        assert smtp["code"] == "AuthenticationFailed" and smtp["serverResponse"].startswith("535")
        assert "wrong" not in json.dumps(response.json)
