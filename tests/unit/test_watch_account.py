"""AccountWatch scheduling rules that need no server: when a task may open a connection."""

from __future__ import annotations

import time

import pytest

from chalicelib.errors import AccountNotFoundError
from chalicelib.services import accounts as account_service
from chalicelib.settings import get_settings
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


def watch() -> AccountWatch:
    context = WatchContext(sink=None, settings=get_settings(), worker="w-test", lease_epoch_of=lambda _: 1,
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
