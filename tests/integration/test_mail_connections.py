"""How the mail API holds IMAP connections, against a real Dovecot behind a proxy the tests
control: reuse, recovery from dropped connections, the per-account limit across processes
(429 + Retry-After), and the request budget when the server stalls or trickles (504)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator

import pytest

from chalicelib.imap.pool import PROCESS_ID
from chalicelib.services import mail_sessions
from chalicelib.settings import reset_settings
from chalicelib.store.connection_leases import DynamoLeaseBroker
from tests.integration.mail_api_support import ControlledProxy, direct_imap, fill, make_message


@pytest.fixture
def proxy(dovecot) -> Iterator[ControlledProxy]:
    proxy = ControlledProxy(dovecot.imap_port)
    yield proxy
    proxy.close()


@pytest.fixture
def mail_settings(monkeypatch) -> Iterator:
    """Set mail API settings for one test; the pool is rebuilt around it."""

    def apply(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        reset_settings()
        mail_sessions.reset_pool()

    yield apply
    monkeypatch.undo()
    reset_settings()
    mail_sessions.reset_pool()


@pytest.fixture
def account(api, dovecot, mail_user, proxy, mail_settings) -> str:
    mail_settings()
    with direct_imap(dovecot, mail_user) as client:
        fill(client, "INBOX", [make_message("one"), make_message("two")])
    account_id = "acc-" + secrets.token_hex(6)
    response = api.post("/v1/account", {
        "account": account_id, "email": mail_user.email,
        "imap": {"host": dovecot.hostname, "port": proxy.port, "secure": False,
                 "auth": {"user": mail_user.email, "pass": mail_user.password}}})
    assert response.status == 200, response.body
    proxy.connections = 0  # the verification login at registration does not count
    return account_id


def list_inbox(api, account):
    return api.get(f"/v1/account/{account}/messages?pageSize=5")


class TestReuse:
    def test_consecutive_requests_share_one_logged_in_connection(self, api, account, proxy):
        for _ in range(5):
            assert list_inbox(api, account).status == 200
        assert proxy.connections == 1
        assert mail_sessions.get_pool().stats(account) == (0, 1)

    def test_a_connection_the_server_dropped_is_replaced_without_failing_the_request(self, api, account, proxy):
        assert list_inbox(api, account).status == 200
        proxy.drop_all()
        time.sleep(0.05)
        response = list_inbox(api, account)
        assert response.status == 200, response.body
        assert proxy.connections == 2


class TestConnectionLimit:
    def test_all_slots_held_by_other_processes_is_429_with_retry_after(self, api, account, mail_settings):
        mail_settings(IMAPLESS_API_CONNECTIONS_PER_ACCOUNT="1", IMAPLESS_IMAP_LEASE_WAIT_SECONDS="0.3")
        broker = DynamoLeaseBroker()
        other = broker.acquire(account, "another-container/1", limit=1, ttl_seconds=40, wait_seconds=0)

        started = time.monotonic()
        response = list_inbox(api, account)

        assert response.status == 429
        assert response.json["code"] == "TooManyConnections"
        assert 30 <= int(response.headers["Retry-After"]) <= 40
        assert 0.25 <= time.monotonic() - started < 3

        broker.release(other)
        assert list_inbox(api, account).status == 200
        assert [lease.holder.split("/")[0] for lease in broker.holders(account)] == [PROCESS_ID]

    def test_a_request_waits_briefly_for_a_busy_connection_of_its_own_process(self, api, account, mail_settings):
        mail_settings(IMAPLESS_API_CONNECTIONS_PER_ACCOUNT="1", IMAPLESS_IMAP_LEASE_WAIT_SECONDS="3")
        held = threading.Event()
        release = threading.Event()

        def hold_the_only_connection() -> None:
            with mail_sessions.mail_connection(account):
                held.set()
                release.wait(5)

        holder = threading.Thread(target=hold_the_only_connection)
        holder.start()
        held.wait(5)
        threading.Timer(0.3, release.set).start()
        started = time.monotonic()
        response = list_inbox(api, account)
        holder.join()

        assert response.status == 200
        assert time.monotonic() - started >= 0.25

    def test_leases_are_released_when_connections_close(self, api, account):
        assert list_inbox(api, account).status == 200
        assert len(DynamoLeaseBroker().holders(account)) == 1
        mail_sessions.reset_pool()
        assert DynamoLeaseBroker().holders(account) == []


class TestBudget:
    def test_a_stalled_server_is_504_within_the_budget_and_the_connection_is_replaced(
            self, api, account, proxy, mail_settings):
        mail_settings(IMAPLESS_API_REQUEST_BUDGET_SECONDS="1.5")
        assert list_inbox(api, account).status == 200

        proxy.mode = "stall"
        started = time.monotonic()
        response = list_inbox(api, account)
        elapsed = time.monotonic() - started

        assert response.status == 504, response.body
        assert response.json["code"] == "UpstreamTimeout"
        assert elapsed < 2.5
        proxy.mode = "pass"
        assert list_inbox(api, account).status == 200
        assert proxy.connections == 2

    def test_a_trickling_server_is_cut_off_at_the_budget(self, api, account, proxy, mail_settings):
        mail_settings(IMAPLESS_API_REQUEST_BUDGET_SECONDS="1")
        assert list_inbox(api, account).status == 200

        proxy.mode = "trickle"
        started = time.monotonic()
        response = list_inbox(api, account)

        assert response.status == 504, response.body
        assert time.monotonic() - started < 2.5

    def test_a_server_that_never_greets_is_504(self, api, account, proxy, mail_settings):
        mail_settings(IMAPLESS_API_REQUEST_BUDGET_SECONDS="1")
        proxy.mode = "stall"
        started = time.monotonic()
        response = list_inbox(api, account)
        assert (response.status, response.json["code"]) == (504, "UpstreamTimeout")
        assert time.monotonic() - started < 2.5
