"""AccountWatch rules that need no server: when a task may open a connection, what a failure reports."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from chalicelib.errors import AccountNotFoundError
from chalicelib.imap.limits import ResponseTooLargeError
from chalicelib.services import accounts as account_service
from chalicelib.settings import get_settings
from chalicelib.store import accounts as account_store
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


def flooded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The account's next task fails as a server over a read cap makes it fail after login."""
    too_large = ResponseTooLargeError("a 900000000-byte literal", 1000, "IMAPLESS_IMAP_MAX_LITERAL_BYTES")

    def load_credentials(account_id: str):
        raise too_large.mail_server_error()

    monkeypatch.setattr(account_service, "load_credentials", load_credentials)


def test_a_server_over_a_read_cap_puts_the_account_in_connect_error(monkeypatch):
    # Given: a connected account whose server goes over a read cap
    flooded(monkeypatch)
    monkeypatch.setattr(account_store, "get_account", lambda _: SimpleNamespace(state="connected", version=4))
    states: list[str] = []
    monkeypatch.setattr(account_store, "set_account_state",
                        lambda account, state, expected_state: states.append(state) or 5)
    sink = ListSink()
    account = watch(sink)
    # When: its task runs
    account.request(connect=True)
    # Then: connectError is announced and stored, and a reconnect is scheduled
    assert [(e.event, e.data["serverResponseCode"]) for e in sink.events] == [
        ("connectError", "ServerResponseTooLarge")]
    assert states == ["connectError"] and account.state == "connectError"
    assert account.retry_at is not None


def test_an_account_whose_connect_error_cannot_be_recorded_still_retries(monkeypatch):
    # Given: the store is unreachable while a server goes over a read cap
    flooded(monkeypatch)

    def unreachable(_):
        raise RuntimeError("store down")

    monkeypatch.setattr(account_store, "get_account", unreachable)
    account = watch(ListSink())
    # When: its task runs
    account.request(connect=True)
    # Then: the task ends normally with a reconnect scheduled (the next failure tries again)
    assert account.retry_at is not None and not account._busy
