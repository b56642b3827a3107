"""AccountWatch rules that need no server: when a task may open a connection, what a failure reports."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from chalicelib.errors import AccountNotFoundError
from chalicelib.imap.capabilities import Capabilities
from chalicelib.imap.limits import ResponseTooLargeError
from chalicelib.imap.watch import CommandFailedError
from chalicelib.services import accounts as account_service
from chalicelib.settings import get_settings
from chalicelib.store import accounts as account_store
from chalicelib.sync import watch_plan
from chalicelib.sync.account_state import SYNC_ERROR_AFTER_FAILURES
from workers.watch.account import AccountWatch
from workers.watch.context import WatchContext


class InlineScheduler:
    """Runs each task at once on the caller's thread (the pool, minus the threads)."""

    def submit(self, task) -> None:
        task()

    def watch_idle(self, account, connection) -> None:
        raise AssertionError("no connection in these tests")

    def forget(self, account) -> None:
        pass


@pytest.fixture
def connect_attempts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    attempts: list[str] = []

    def load_credentials(account_id: str):
        attempts.append(account_id)
        raise AccountNotFoundError(account_id)  # ends the attempt before any socket

    monkeypatch.setattr(account_service, "load_credentials", load_credentials)
    return attempts


def watch(sink=None) -> AccountWatch:
    context = WatchContext(sink=sink, settings=get_settings(), worker="w-test", lease_epoch_of=lambda _: 1,
                           scheduler=InlineScheduler())
    return AccountWatch("acc-1", "connected", 1, context)


def test_work_left_by_a_failed_connection_waits_for_the_backoff(connect_attempts):
    # Given: an account backing off after a failure (no connection, retry in 100 s)
    account = watch()
    account.retry_at = time.monotonic() + 100
    # When: timer work that fired while the connection was failing reaches the task
    account.request(reissue=True, sweep=True, readable=True)
    # Then: no connection is attempted before the backoff ends
    assert connect_attempts == []


def test_the_connect_timer_opens_the_connection(connect_attempts):
    account = watch()
    account.request(connect=True)
    assert connect_attempts == ["acc-1"]


class ListSink:
    def __init__(self) -> None:
        self.events: list = []

    def publish(self, events) -> None:
        self.events.extend(events)


class FakeConnection:
    """A logged-in connection to a server without NOTIFY; nothing is ever read from it."""

    capabilities = Capabilities(frozenset({"IDLE"}))
    idling = False

    def close(self) -> None:
        pass


def stored_account(monkeypatch: pytest.MonkeyPatch, state: str) -> dict:
    """The account record as the store keeps it; state changes are conditional on the old state."""
    server = SimpleNamespace(user="user@example.test")
    monkeypatch.setattr(account_service, "load_credentials", lambda account_id: account_service.AccountCredentials(
        account=account_id, imap=server, imap_secret="pw", smtp=None, smtp_secret=None, incarnation="i1"))
    stored = {"state": state, "version": 1, "last_error": None}
    monkeypatch.setattr(account_store, "get_account",
                        lambda _: SimpleNamespace(state=stored["state"], version=stored["version"]))

    def set_account_state(account, state, *, expected_state, last_error=None):
        assert expected_state == stored["state"]
        stored.update(state=state, version=stored["version"] + 1, last_error=last_error)
        return stored["version"]

    monkeypatch.setattr(account_store, "set_account_state", set_account_state)
    return stored


def flooded_after_login(monkeypatch: pytest.MonkeyPatch, account: AccountWatch) -> None:
    """The server lets the account in, then answers the catch-up with more than a read cap allows."""
    too_large = ResponseTooLargeError("a 900000000-byte literal", 1000, "IMAPLESS_IMAP_MAX_LITERAL_BYTES")
    account.context.open_connection = lambda *_: FakeConnection()
    monkeypatch.setattr(account.folders, "load", lambda: None)

    def flood(connection):
        raise too_large.mail_server_error()

    monkeypatch.setattr(account.folders, "catch_up", flood)


def test_a_server_over_a_read_cap_is_a_sync_error_at_once_and_does_not_flap(monkeypatch):
    # Given: a connected account whose server goes over a read cap after every login
    stored = stored_account(monkeypatch, "connected")
    sink = ListSink()
    account = watch(sink)
    flooded_after_login(monkeypatch, account)
    # When: its task runs, and the reconnects that follow run too
    for _ in range(4):
        account.request(connect=True)
    # Then: one syncError with the stable code, stored with lastError; the later good logins
    # announce nothing (no authenticationSuccess / error pair per retry); a reconnect is scheduled
    assert [(e.event, e.data["serverResponseCode"]) for e in sink.events] == [
        ("syncError", "ServerResponseTooLarge")]
    assert stored["state"] == "syncError" and stored["last_error"]["code"] == "ServerResponseTooLarge"
    assert account.retry_at is not None


def test_an_account_whose_sync_error_cannot_be_recorded_still_retries(monkeypatch):
    # Given: the store is unreachable while a server goes over a read cap
    stored_account(monkeypatch, "connected")

    def unreachable(*args, **kwargs):
        raise RuntimeError("store down")

    monkeypatch.setattr(account_store, "get_account", unreachable)
    account = watch(ListSink())
    flooded_after_login(monkeypatch, account)
    # When: its task runs
    account.request(connect=True)
    # Then: the task ends normally with a reconnect scheduled (the next failure tries again)
    assert account.retry_at is not None and not account._busy


def test_failures_after_login_become_one_sync_error_and_a_catch_up_clears_it(monkeypatch):
    # Given: a new account whose server lets it in, then refuses to open the mailbox
    stored = stored_account(monkeypatch, "new")
    sink = ListSink()
    account = watch(sink)
    account.state, account.version = "new", 1
    account.context.open_connection = lambda *_: FakeConnection()
    monkeypatch.setattr(account.folders, "load", lambda: None)

    def refuse(connection):
        raise CommandFailedError("EXAMINE failed: A4 NO [SERVERBUG] index broken",
                                 server_response="NO [SERVERBUG] index broken")

    monkeypatch.setattr(account.folders, "catch_up", refuse)

    # When: it connects and fails to catch up, again and again
    for _ in range(SYNC_ERROR_AFTER_FAILURES + 2):
        account.request(connect=True)

    # Then: connected at the login, then one syncError, with the server's words in lastError
    assert [e.event for e in sink.events] == ["authenticationSuccess", "syncError"]
    assert stored["state"] == "syncError"
    assert stored["last_error"]["code"] == "CommandFailed"
    assert stored["last_error"]["serverResponse"] == "NO [SERVERBUG] index broken"
    assert account.retry_at is not None

    # When: the server recovers and the catch-up completes
    monkeypatch.setattr(account.folders, "catch_up", lambda connection: None)
    monkeypatch.setattr(account, "_idle", lambda listener: None)
    account.request(connect=True)

    # Then: connected again, once, and lastError is gone
    assert [e.event for e in sink.events] == ["authenticationSuccess", "syncError", "authenticationSuccess"]
    assert stored["state"] == "connected" and stored["last_error"] is None


def test_after_a_read_cap_a_catch_up_is_not_enough_a_connection_that_held_is(monkeypatch):
    # Given: an account in syncError because its server flooded the catch-up
    stored = stored_account(monkeypatch, "connected")
    sink = ListSink()
    account = watch(sink)
    flooded_after_login(monkeypatch, account)
    account.request(connect=True)
    failures = account.health.failures
    assert stored["state"] == "syncError"
    # When: the next catch-up completes
    monkeypatch.setattr(account.folders, "catch_up", lambda connection: None)
    monkeypatch.setattr(account, "_idle", lambda listener: None)
    account.request(connect=True)
    # Then: nothing is announced yet, and the backoff series is not reset by the catch-up alone
    assert [e.event for e in sink.events] == ["syncError"]
    assert stored["state"] == "syncError" and account.health.failures == failures
    # When: the connection has held for the stability period (checked at every task of the account)
    account.health = account.health.logged_in(time.monotonic() - watch_plan.STABLE_CONNECTION_SECONDS)
    account._confirm_recovery()
    # Then: connected is announced, once, and lastError is gone
    assert [e.event for e in sink.events] == ["syncError", "authenticationSuccess"]
    assert stored["state"] == "connected" and stored["last_error"] is None
