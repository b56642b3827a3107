"""Which accounts the watcher follows, and what it reads to know: the watchlist generation.

Real watcher subprocess, real Dovecot, moto. The watcher's AWS requests are counted by a
hook in the harness (``record_aws_calls``): the requests still reach moto.

Dovecot only: which accounts are watched is decided in AWS, not by the mail server.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from chalicelib.store import watchlist
from tests.integration.watcher_support import WatcherProcess, register_account, running_watcher, send_mail

ACCOUNTS_SCAN = "Scan imapless-accounts watch"
GENERATION_READ = "GetItem imapless-settings"
LEASES_SCAN = "Scan imapless-watcher-leases"


def wait_until(condition, timeout: float, what: str) -> float:
    """Seconds it took ``condition`` to hold (polled every 50 ms), or AssertionError after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def calls_during(watcher: WatcherProcess, seconds: float) -> Counter:
    before = len(watcher.aws_calls())
    time.sleep(seconds)
    return Counter(watcher.aws_calls()[before:])


def test_an_account_registered_while_running_is_watched_within_5_s_and_dropped_within_5_s_of_deletion(
        api, dovecot, make_mail_user, events, prefix):
    # Given: a watcher at the production scan period (2 s), already running
    user = make_mail_user()
    account = prefix + "live"
    with running_watcher(events, prefix, prefix + "ns",
                         extra_env={"IMAPLESS_WATCHER_ACCOUNT_SCAN_SECONDS": "2"}) as watcher:
        time.sleep(1.0)
        # When: an account is registered through the API
        register_account(api, dovecot, user, account)
        registered = time.monotonic()
        # Then: it is watched (baseline done, accountInitialized published) within 5 s
        events.wait_for(lambda ev: events.of(account, "accountInitialized"), timeout=10, what="initialized")
        assert time.monotonic() - registered < 5, watcher.log_text()
        assert dovecot.connections(user.email) >= 1

        # When: it is deleted through the API
        assert api.delete(f"/v1/account/{account}").status in (200, 204)
        # Then: the watcher lets go of its mailbox within 5 s
        assert wait_until(lambda: dovecot.connections(user.email) == 0, timeout=10,
                          what="the watcher to close its connections") < 5


def test_an_account_disabled_through_the_api_is_dropped_within_5_s_and_resumed_without_loss(
        api, dovecot, postfix, make_mail_user, events, prefix):
    # Given: a watched account, at the production scan period (2 s)
    user, sender = make_mail_user(), make_mail_user()
    account = prefix + "paused"
    with running_watcher(events, prefix, prefix + "ns",
                         extra_env={"IMAPLESS_WATCHER_ACCOUNT_SCAN_SECONDS": "2"}):
        register_account(api, dovecot, user, account)
        events.wait_for(lambda ev: events.of(account, "accountInitialized"), timeout=10, what="initialized")

        # When: it is disabled through the API
        answer = api.put(f"/v1/account/{account}", body={"imap": {"disabled": True}})
        assert answer.status == 200, answer.body
        assert answer.json["state"] == "disabled" and answer.json["imap"]["disabled"] is True
        # Then: the watcher lets go of its mailbox within 5 s, and says nothing while it is off
        assert wait_until(lambda: dovecot.connections(user.email) == 0, timeout=10,
                          what="the watcher to close its connections") < 5
        send_mail(postfix, sender, user.email, "while disabled")
        time.sleep(2.0)
        events.poll()
        assert not events.of(account, "messageNew")

        # When: it is enabled again; Then: watched again within 5 s, and the mail that came
        # meanwhile is announced once (caught up from the checkpoint, not re-baselined)
        answer = api.put(f"/v1/account/{account}", body={"imap": {"disabled": False}})
        assert answer.status == 200 and answer.json["state"] == "new", answer.body
        enabled = time.monotonic()
        events.wait_for(lambda ev: events.of(account, "messageNew"), timeout=10, what="the mail from meanwhile")
        assert time.monotonic() - enabled < 5
        time.sleep(1.0)
        events.poll()
    assert [e.data["subject"] for e in events.of(account, "messageNew")] == ["while disabled"]
    assert len(events.of(account, "accountInitialized")) == 1


def test_an_account_written_without_a_generation_bump_is_found_by_the_periodic_full_scan(
        api, dovecot, make_mail_user, events, prefix, monkeypatch: pytest.MonkeyPatch):
    # Given: a watcher that scans every account at least every 3 s whatever the generation says
    user = make_mail_user()
    account = prefix + "lostbump"
    with running_watcher(events, prefix, prefix + "ns", extra_env={"IMAPLESS_WATCHER_FULL_SCAN_SECONDS": "3"},
                         record_aws_calls=True) as watcher:
        time.sleep(1.0)
        generation = watchlist.read_generation()
        # When: an account is written by a writer that dies before bumping the generation
        monkeypatch.setattr(watchlist, "bump_generation", lambda: None)
        register_account(api, dovecot, user, account)
        registered = time.monotonic()
        assert watchlist.read_generation() == generation
        # Then: the next full scan finds it anyway
        events.wait_for(lambda ev: events.of(account, "accountInitialized"), timeout=10, what="initialized")
        assert time.monotonic() - registered < 3 + 2
        # ... and those full scans are all the watcher does to the accounts meanwhile
        # (the test timings tick every 0.3 s: scanning every tick would be ~13 scans in 4 s)
        assert 1 <= calls_during(watcher, 4.0)[ACCOUNTS_SCAN] <= 2


def test_an_idle_watcher_reads_one_generation_item_per_tick_and_scans_only_after_a_change(
        api, dovecot, make_mail_user, events, prefix):
    # Given: a watcher with one account, settled (baseline done, leases taken)
    user, newcomer = make_mail_user(), make_mail_user()
    register_account(api, dovecot, user, prefix + "idle")
    with running_watcher(events, prefix, prefix + "ns", record_aws_calls=True) as watcher:
        events.wait_for(lambda ev: events.of(prefix + "idle", "accountInitialized"), timeout=15, what="initialized")
        time.sleep(1.0)
        # When: nothing changes for 4 s (the test timings tick every 0.3 s)
        idle = calls_during(watcher, 4.0)
        # Then: every tick reads the generation, none scans the accounts, and the 8 shard
        # leases are re-read only every half lease period (1.5 s here), not every tick
        assert idle[GENERATION_READ] >= 8, idle
        assert idle[ACCOUNTS_SCAN] == 0, idle
        assert idle[LEASES_SCAN] <= 4, idle

        # When: an account is registered; Then: the next ticks scan and it is watched
        before = len(watcher.aws_calls())
        register_account(api, dovecot, newcomer, prefix + "newcomer")
        events.wait_for(lambda ev: events.of(prefix + "newcomer", "accountInitialized"), timeout=10,
                        what="newcomer initialized")
        assert Counter(watcher.aws_calls()[before:])[ACCOUNTS_SCAN] >= 1
