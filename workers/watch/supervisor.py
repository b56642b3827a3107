"""The watcher process's control loop: heartbeat, shard leases, and which accounts to watch.

::

    every watcher_account_scan_seconds (main thread)
      ├─ heartbeat (own thread, every watcher_heartbeat_seconds) ─▶ watchers table
      ├─ live workers ─┬─ shard owners (re-read only when due, see rescan.py)
      │                └▶ plan_leases ─▶ release / acquire (conditional writes)
      ├─ watchlist generation (one GetItem) ─▶ moved? ─▶ account rows (watch index scan)
      │      (else: the rows of the last scan; a full scan every watcher_full_scan_seconds)
      ├─ rows or my shards changed? ─▶ desired = watchable ∩ my shards ∩ filter
      └─ start new accounts (staggered), stop removed/disabled ones, restart edited ones

Idle cost per scan period at any number of accounts: one GetItem of the generation and
one small scan of the watchers table; the accounts are scanned only when one was
written through the API (or once a minute), the 256 shard leases only when the live
processes change or the leases are not settled (or every half lease period).

Late heartbeats: past ``watcher_lease_seconds - watcher_heartbeat_seconds`` without one
the others may consider the process dead, so it takes no new shard; what it runs goes on
(an overloaded table must not turn into a reconnect storm) until the owners scan shows
a shard taken, and lease epochs keep its checkpoint writes from landing after the new
owner's. After ``FENCE_AFTER_LEASES`` lease periods it is cut off and stops everything.

Stop: accounts are stopped (tasks finish their current step), shard leases released and
the worker row removed, so the remaining processes take over on their next scan.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable

from chalicelib.events.publisher import EventSink
from chalicelib.settings import Settings
from chalicelib.store import leases as lease_store
from chalicelib.store import watchlist
from chalicelib.store.watchlist import WatchedAccount, warm_up_clients
from chalicelib.sync.account_state import WATCHABLE_STATES
from workers.watch import logger
from workers.watch.account import AccountWatch
from workers.watch.context import WatchContext
from workers.watch.multiplexer import Multiplexer
from workers.watch.rescan import AccountScanSchedule, OwnersReadSchedule
from workers.watch.shards import leases_settled, plan_leases, shard_of

STOP_WAIT_SECONDS = 10.0
# Without a heartbeat for this many lease periods the process is cut off: it stops watching.
FENCE_AFTER_LEASES = 3
# The watch index is eventually consistent (on DynamoDB typically well under a second):
# after the generation moves, accounts are scanned on every tick for this long.
WATCH_INDEX_SETTLE_SECONDS = 3.0


class Watcher:
    def __init__(self, sink: EventSink, settings: Settings, *, namespace: str = "watcher",
                 account_filter: Callable[[str], bool] | None = None, worker: str | None = None) -> None:
        self.settings = settings
        self.namespace = namespace
        self.worker = worker or f"w-{os.getpid()}-{secrets.token_hex(4)}"
        self.account_filter = account_filter or (lambda _account: True)
        warm_up_clients()
        self.multiplexer = Multiplexer(settings.watcher_pool_size, settings.watcher_connect_rate)
        self.context = WatchContext(sink=sink, settings=settings, worker=self.worker,
                                    lease_epoch_of=self.lease_epoch_of, scheduler=self.multiplexer)
        self.shard_keys = [lease_store.shard_key(namespace, n) for n in range(settings.watcher_shards)]
        self.owned: set[str] = set()
        self.epochs: dict[str, int] = {}
        self.started_at_ms = lease_store.now_ms()
        self._heartbeat_ok_at = 0.0
        self._releasing: dict[str, list[AccountWatch | None]] = {}
        self._next_connect_slot = 0.0
        self._account_scans = AccountScanSchedule(settings.watcher_full_scan_seconds, WATCH_INDEX_SETTLE_SECONDS)
        self._owner_reads = OwnersReadSchedule(settings.watcher_lease_seconds / 2)
        self._owners: dict[str, str] = {}
        self._rows: list[WatchedAccount] = []
        self._reconciled_for: tuple[frozenset[str], frozenset[str]] | None = None

    def lease_key_of(self, account: str) -> str:
        return lease_store.shard_key(self.namespace, shard_of(account, self.settings.watcher_shards))

    def lease_epoch_of(self, account: str) -> int:
        """The epoch of our lease on the account's shard (0: not ours), stamped on checkpoint writes."""
        return self.epochs.get(self.lease_key_of(account), 0)

    # -- lifecycle -------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        loop = threading.Thread(target=self.multiplexer.run, args=(stop,), name="idle-multiplexer", daemon=True)
        loop.start()
        self._beat()
        beating = threading.Thread(target=self._heartbeat_loop, args=(stop,), name="heartbeat", daemon=True)
        beating.start()
        logger.info("watcher running", extra={"worker": self.worker, "shards": self.settings.watcher_shards})
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except Exception:  # noqa: BLE001 - a DynamoDB hiccup must not end the process
                    logger.exception("supervisor tick failed", extra={"worker": self.worker})
                stop.wait(self.settings.watcher_account_scan_seconds)
        finally:
            self.shutdown()
            loop.join(timeout=5)
            self.multiplexer.close()

    def shutdown(self) -> None:
        accounts = self.multiplexer.snapshot_accounts()
        for account in accounts:
            account.stop()
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        for account in accounts:
            account.stopped.wait(max(0.0, deadline - time.monotonic()))
        for key in sorted(self.owned):
            try:
                lease_store.release_shard(key, self.worker)
            except Exception:  # noqa: BLE001 - best effort: the lease expires with our heartbeat anyway
                logger.warning("could not release shard", extra={"shard": key})
        self.owned.clear()
        self.epochs.clear()
        try:
            lease_store.remove_worker(self.worker)
        except Exception:  # noqa: BLE001
            logger.warning("could not remove worker row", extra={"worker": self.worker})
        logger.info("watcher stopped", extra={"worker": self.worker, "accounts": len(accounts)})

    # -- one control step ------------------------------------------------------------------

    def _beat(self) -> None:
        started = time.monotonic()
        try:
            lease_store.heartbeat(self.worker, self.namespace, self.settings.watcher_lease_seconds,
                                  self.started_at_ms)
            self._heartbeat_ok_at = started
        except Exception:  # noqa: BLE001 - retried at the next beat
            # Retried at the next beat; fencing covers a long outage.
            logger.exception("heartbeat failed", extra={"worker": self.worker})

    def _heartbeat_loop(self, stop: threading.Event) -> None:
        # Its own thread: a slow tick (many accounts, a slow table) must never age the heartbeat.
        while not stop.wait(self.settings.watcher_heartbeat_seconds):
            self._beat()

    def tick(self) -> None:
        age = time.monotonic() - self._heartbeat_ok_at
        if age > FENCE_AFTER_LEASES * self.settings.watcher_lease_seconds:
            self._fence()
            return
        if age > self.settings.watcher_lease_seconds - self.settings.watcher_heartbeat_seconds:
            # Others may be taking our shards: take none, keep what still runs. Losing a
            # shard shows in the next scan of owners; until then the epochs keep our writes
            # from landing on anything the new owner wrote.
            logger.warning("heartbeat late: not taking shards", extra={"worker": self.worker, "age": round(age, 1)})
            owners = lease_store.shard_owners(self.namespace)
            self._owner_reads.invalidate()
            self.owned = {key for key in self.owned if owners.get(key) == self.worker}
            self._refresh_accounts()
            return
        self._rebalance()
        self._refresh_accounts()

    def _refresh_accounts(self) -> None:
        """Re-scan the accounts if the generation says so; reconcile if rows or shards changed."""
        now = time.monotonic()
        try:
            generation: int | None = watchlist.read_generation()
        except Exception:  # noqa: BLE001 - cannot tell whether anything changed: scan
            logger.warning("could not read the watchlist generation", extra={"worker": self.worker})
            generation = None
        scanned = self._account_scans.due(generation, now)
        if scanned:
            self._rows = watchlist.list_watch_rows()
            self._account_scans.scanned(generation, now)
            logger.debug("accounts scanned", extra={"accounts": len(self._rows), "generation": generation})
        shards = (frozenset(self.owned), frozenset(self._releasing))
        if scanned or shards != self._reconciled_for:
            self._reconcile_accounts(self._rows)
            self._reconciled_for = shards

    def _fence(self) -> None:
        """Cut off from the lease table for several lease periods: stop everything."""
        if self.owned or self.multiplexer.accounts:
            logger.warning("no heartbeat for several lease periods: stopping every account",
                           extra={"worker": self.worker})
        for account in self.multiplexer.snapshot_accounts():
            self._stop_account(account.account)
        self.owned.clear()
        self.epochs.clear()
        self._owner_reads.invalidate()
        # The accounts just stopped must start again when the same shards come back: without
        # this, those shards equal the last reconciled ones and nothing restarts the accounts
        # until the next full account scan (up to IMAPLESS_WATCHER_FULL_SCAN_SECONDS later).
        self._reconciled_for = None

    def _shard_owners(self, live: list[str]) -> dict[str, str]:
        now = time.monotonic()
        if self._owner_reads.due(live, now):
            self._owners = lease_store.shard_owners(self.namespace)
            self._owner_reads.read(live, now)
        return self._owners

    def _rebalance(self) -> None:
        live = [w.worker for w in lease_store.live_workers(self.namespace)]
        owners = self._shard_owners(live)
        plan = plan_leases(self.worker, live, owners, self.shard_keys)
        owned = {key for key, owner in owners.items() if owner == self.worker}
        for key in plan.release:
            # Stop the shard's accounts now, give the lease back once they have all stopped
            # (a later tick), so the next owner never syncs an account we are still syncing.
            stopping = self._releasing.setdefault(key, [])
            for account in self.multiplexer.snapshot_accounts():
                if self.lease_key_of(account.account) == key:
                    stopping.append(self._stop_account(account.account))
        for key, stopping in list(self._releasing.items()):
            if all(account is None or account.stopped.is_set() for account in stopping):
                del self._releasing[key]
                if key in owned and lease_store.release_shard(key, self.worker):
                    owned.discard(key)
                    self.epochs.pop(key, None)
        for key, previous in plan.acquire:
            epoch = lease_store.acquire_shard(key, self.worker, previous)
            if epoch is not None:
                self.epochs[key] = epoch
                owned.add(key)
        for key in owned - set(self.epochs):
            # Held in the table but not in use here (after fencing): take it anew, with a new
            # epoch, so nothing written under the old one can land after us.
            epoch = lease_store.acquire_shard(key, self.worker, self.worker)
            if epoch is None:
                owned.discard(key)
            else:
                self.epochs[key] = epoch
        moved = owned != {key for key, owner in owners.items() if owner == self.worker}
        # Cached owners stay valid only while nothing is in motion (see rescan.py).
        self._owner_reads.settled = (not moved and not plan.acquire and not plan.release and not self._releasing
                                     and leases_settled([*live, self.worker], owners, self.shard_keys))
        if owned != self.owned:
            logger.info("shards changed", extra={"worker": self.worker, "shards": len(owned), "live": len(live)})
        self.owned = owned

    def _reconcile_accounts(self, rows: list[WatchedAccount]) -> None:
        desired = {row.account: row for row in rows
                   if row.state in WATCHABLE_STATES and self.lease_key_of(row.account) in self.owned
                   and self.lease_key_of(row.account) not in self._releasing
                   and self.account_filter(row.account)}
        for account in self.multiplexer.snapshot_accounts():
            row = desired.get(account.account)
            if row is None:
                self._stop_account(account.account)
            elif row.updated_at != account.updated_at:
                self._stop_account(account.account)  # credentials or servers edited: start afresh
        now = time.monotonic()
        for account_id, row in sorted(desired.items()):
            if account_id in self.multiplexer.accounts:
                continue
            watch = AccountWatch(account_id, row.state, row.version, self.context, updated_at=row.updated_at)
            self._next_connect_slot = max(now, self._next_connect_slot) + 1 / self.settings.watcher_connect_rate
            watch.retry_at = self._next_connect_slot
            self.multiplexer.add(watch)

    def _stop_account(self, account_id: str) -> AccountWatch | None:
        account = self.multiplexer.remove(account_id)
        if account is not None:
            account.stop()
        return account
