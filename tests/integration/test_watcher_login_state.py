"""A login outcome is announced once, even when an API edit resets the state meanwhile.

The watcher publishes a state change and then moves the stored state with a conditional
write. A corrected password picked up by a retry can log in while the ``PUT`` that carried
it resets the stored state to ``new``: the conditional write then fails. The outcome must
still be recorded, or the watch restarted for the edit announces the same login again
under the edited version's id (two ``authenticationSuccess`` for one recovery).

Dovecot only: login outcomes and stored state do not depend on the server family.
"""

from __future__ import annotations

import secrets

import pytest

from chalicelib.settings import get_settings
from chalicelib.store import accounts as account_store
from chalicelib.sync.account_state import LoginOutcome
from tests.integration.test_api_auth_and_errors import new_account
from tests.unit.test_watch_account import InlineScheduler
from workers.watch.account import AccountWatch
from workers.watch.context import WatchContext

pytestmark = pytest.mark.usefixtures("aws_resources")


class ListSink:
    def __init__(self) -> None:
        self.events: list = []

    def publish(self, events: list) -> None:
        self.events.extend(events)


def watch_of(account: str, sink: ListSink) -> AccountWatch:
    """An account's watch as the supervisor starts it: from the watchlist row's state."""
    stored = account_store.get_account(account)
    context = WatchContext(sink=sink, settings=get_settings(), worker="w-test", lease_epoch_of=lambda _: 1,
                           scheduler=InlineScheduler())
    return AccountWatch(account, stored.state, stored.version, context)


def test_a_login_that_races_an_edit_is_announced_once(api, monkeypatch):
    # Given: an account in authenticationError, watched from that state
    account = f"race-{secrets.token_hex(4)}"
    new_account(api, account)
    account_store.set_account_state(account, "authenticationError", expected_state="new")
    sink = ListSink()
    first = watch_of(account, sink)
    # ... and a PUT with the corrected password that lands between the watcher's read of the
    # stored state and its conditional write
    real_get = account_store.get_account

    def read_then_edit(account_id: str):
        stored = real_get(account_id)
        monkeypatch.setattr(account_store, "get_account", real_get)
        edited = api.put(f"/v1/account/{account}", {"imap": {"auth": {"pass": "corrected"}}, "verify": False})
        assert edited.status == 200, edited.body
        return stored

    monkeypatch.setattr(account_store, "get_account", read_then_edit)

    # When: the login succeeds, and then the watch is restarted for the edit from the row
    # the edit left ("new"), as the supervisor does when it sees the edit
    first._record_login(LoginOutcome(ok=True, user=account))
    stale_row_version = first.version - 1  # the edit's version, before the watcher's write
    second = AccountWatch(account, "new", stale_row_version, first.context)
    second._record_login(LoginOutcome(ok=True, user=account))

    # Then: one authenticationSuccess in all, and the stored state is connected
    assert [event.event for event in sink.events] == ["authenticationSuccess"]
    assert account_store.get_account(account).state == "connected"
