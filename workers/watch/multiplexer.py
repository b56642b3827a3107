"""The IDLE multiplexer: one thread waits on every idling connection with ``selectors``.

::

    pool threads (AccountWatch tasks)            multiplexer thread
    ---------------------------------            ------------------------------------------
    start IDLE, watch_idle(acct, conn) ──queue──▶ register fd (epoll)
                                                  select(<= 0.25 s)
                                                    fd readable ─▶ unregister, acct.request(readable)
    drain/DONE/sync/IDLE ◀──── pool.submit ───────  timers due   ─▶ acct.request(connect|reissue|sweep)
    forget(acct) ───────────────queue───────────▶ unregister fd

The multiplexer never reads or writes IMAP itself: a readable socket is handed to the
account's task, so a slow server blocks one pool thread, never the loop. Readiness is a
hint, not a promise: by the time the task runs, its own commands may have consumed the
bytes, so the task checks without blocking before it reads (``WatchConnection.drain_idle``).
A task that talks on an idling connection for another reason (a timer) unregisters it first. Registration
changes go through a queue plus a wake-up socket because selectors are not thread-safe.
Connection attempts pass a token bucket (``watcher_connect_rate`` per second), which
staggers the reconnect storm after a restart or a server outage.
"""

from __future__ import annotations

import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from chalicelib.imap.watch import WatchConnection
from workers.watch import logger
from workers.watch.account import AccountWatch

SELECT_TIMEOUT_SECONDS = 0.25
TIMER_RESOLUTION_SECONDS = 0.1


class Multiplexer:
    def __init__(self, pool_size: int, connect_rate: float) -> None:
        self.selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)  # one pending byte is enough; never block a caller
        self.selector.register(self._wake_reader, selectors.EVENT_READ, None)
        self.pool = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="watch")
        self._changes: queue.SimpleQueue[tuple[str, AccountWatch, int]] = queue.SimpleQueue()
        self._fds: dict[int, AccountWatch] = {}
        self._fd_of: dict[AccountWatch, int] = {}  # the reverse of _fds
        self.accounts: dict[str, AccountWatch] = {}
        self._accounts_lock = threading.Lock()
        self._connect_rate = connect_rate
        self._tokens = connect_rate
        self._refilled_at = time.monotonic()
        self._timers_checked_at = 0.0

    # -- called from any thread ------------------------------------------------------------

    def submit(self, task: Callable[[], None]) -> None:
        self.pool.submit(task)

    def watch_idle(self, account: AccountWatch, connection: WatchConnection) -> None:
        self._changes.put(("register", account, connection.fileno()))
        self._wake()

    def forget(self, account: AccountWatch) -> None:
        self._changes.put(("unregister", account, -1))
        self._wake()

    def add(self, account: AccountWatch) -> None:
        with self._accounts_lock:
            self.accounts[account.account] = account

    def remove(self, account_id: str) -> AccountWatch | None:
        with self._accounts_lock:
            return self.accounts.pop(account_id, None)

    def snapshot_accounts(self) -> list[AccountWatch]:
        with self._accounts_lock:
            return list(self.accounts.values())

    def _wake(self) -> None:
        try:
            self._wake_writer.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # the reader already has a pending wake-up byte

    # -- the loop (its own thread) ---------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            for key, _ in self.selector.select(SELECT_TIMEOUT_SECONDS):
                if key.data is None:
                    self._drain_wake()
                    continue
                account = self._fds.pop(key.fd, None)
                self._unregister_fd(key.fd)
                if account is not None:
                    self._fd_of.pop(account, None)
                    logger.debug("readable", extra={"account": account.account, "fd": key.fd})
                    account.request(readable=True)
            self._apply_changes()
            now = time.monotonic()
            if now - self._timers_checked_at >= TIMER_RESOLUTION_SECONDS:
                self._timers_checked_at = now
                self._fire_timers(now)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.selector.close()
        self._wake_reader.close()
        self._wake_writer.close()

    def _drain_wake(self) -> None:
        try:
            while self._wake_reader.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _unregister_fd(self, fd: int) -> None:
        try:
            self.selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def _apply_changes(self) -> None:
        while True:
            try:
                kind, account, fd = self._changes.get_nowait()
            except queue.Empty:
                return
            stale_fd = self._fd_of.pop(account, None)
            if stale_fd is not None:
                del self._fds[stale_fd]
                self._unregister_fd(stale_fd)
            if kind == "register" and fd >= 0:
                # A closed socket's number may be reused by a new one: drop any stale entry first.
                previous = self._fds.pop(fd, None)
                self._unregister_fd(fd)
                if previous is not None and previous is not account:
                    self._fd_of.pop(previous, None)
                    previous.request(readable=True)
                try:
                    self.selector.register(fd, selectors.EVENT_READ, account)
                except (OSError, ValueError):
                    account.request(readable=True)  # the socket died meanwhile: let its task notice
                    continue
                self._fds[fd] = account
                self._fd_of[account] = fd
                logger.debug("idling", extra={"account": account.account, "fd": fd})

    def _fire_timers(self, now: float) -> None:
        self._tokens = min(self._connect_rate, self._tokens + (now - self._refilled_at) * self._connect_rate)
        self._refilled_at = now
        for account in self.snapshot_accounts():
            if account.retry_at is not None and account.retry_at <= now:
                if self._tokens < 1:
                    account.retry_at = now + 1 / self._connect_rate
                    continue
                self._tokens -= 1
            work = account.due_work(now)
            if work:
                account.request(**work)
