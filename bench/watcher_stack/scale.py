"""The watcher's many-account bench stack: a Dovecot tuned for thousands of IDLE connections
and a queue collector that drains events in a thread (watcher_scale, oauth2_refresh_storm).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tests.integration.watcher_support import EventQueue
from tests.support.mailservers import Dovecot

INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")


@contextlib.contextmanager
def raised_inotify_instances(wanted: int) -> Iterator[str]:
    """Raise the inotify instance limit for the block (each Dovecot IDLE watches its mailbox
    with one; without one left Dovecot polls every second, which sets the floor at ~1 s);
    yields what was done, for the report."""
    previous = INOTIFY_INSTANCES.read_text().strip() if INOTIFY_INSTANCES.exists() else None
    try:
        INOTIFY_INSTANCES.write_text(str(wanted))
        note = f"raised {previous} -> {wanted}"
    except OSError as exc:
        note = f"could not raise ({exc.strerror}): Dovecot polls every 1 s"
    try:
        yield note
    finally:
        if previous is not None:
            with contextlib.suppress(OSError):
                INOTIFY_INSTANCES.write_text(previous)


class ScaleDovecot(Dovecot):
    """The test Dovecot with limits for thousands of concurrent IDLE connections."""

    CONNECTIONS = 12000
    CLIENTS_PER_IMAP = 50
    TLS_CLIENTS_PER_LOGIN = 1500

    def _render_config(self) -> str:
        limit = self.CONNECTIONS
        config = super()._render_config()
        # TLS sessions stay in the imap-login process that accepted them (it proxies the
        # decrypted stream to imap): one login process for 5,000 TLS clients grew past its
        # 512 MB vsz limit and stopped answering (every IDLE DONE timed out). Spread them over
        # several, each with room, as Dovecot's "high-performance mode" advises.
        config = config.replace("  client_limit = 1000\n", f"  client_limit = {self.TLS_CLIENTS_PER_LOGIN}\n"
                                "  process_min_avail = 4\n  vsz_limit = 2G\n")
        # One imap process per connection costs ~5 MB each: 5,000 of them would not fit next
        # to everything else in 24 GB. All mail runs as one uid, so an imap process can
        # safely serve many connections.
        shared = f"service imap {{\n  process_limit = {limit}\n  client_limit = {self.CLIENTS_PER_IMAP}\n"
        config = config.replace("service imap {\n  process_limit = 1024\n", shared)
        config = config.replace("mail_max_userip_connections = 1000", f"mail_max_userip_connections = {limit}")
        config = config.replace("service anvil {\n", f"service anvil {{\n  client_limit = {limit + 2000}\n")
        return config + (f"default_client_limit = {limit}\ndefault_process_limit = {limit}\n"
                         f"default_vsz_limit = 512M\nservice stats {{\n  client_limit = {limit + 2000}\n}}\n"
                         f"service auth {{\n  client_limit = {limit + 2000}\n}}\n")


class Collector(EventQueue):
    """Drains the queue in a thread; keeps what the measurements need."""

    def __init__(self) -> None:
        super().__init__()
        self.initialized_at: dict[str, float] = {}
        self.calls = 0  # our own requests to the emulator, subtracted from the watcher's
        self.new_at: dict[str, list[float]] = {}
        self.kinds: Counter[str] = Counter()  # every event kind seen, e.g. authenticationError
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        from chalicelib.events.model import Event

        while not self._stop.is_set():
            try:
                # Long polling: an empty queue costs the emulator one call a second, not a hundred.
                self.calls += 1
                answer = self.client.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                                     AttributeNames=["SentTimestamp"], WaitTimeSeconds=1)
            except Exception as exc:  # noqa: BLE001 - report, keep draining
                print(f"queue receive failed: {exc}", flush=True)
                time.sleep(0.5)
                continue
            messages = answer.get("Messages", [])
            if not messages:
                continue
            for message in messages:
                event = Event.from_json(message["Body"])
                sent = int(message["Attributes"]["SentTimestamp"]) / 1000
                self.kinds[event.event] += 1
                if event.event == "accountInitialized":
                    self.initialized_at[event.account] = sent
                elif event.event == "messageNew":
                    self.new_at.setdefault(event.account, []).append(sent)
            self.calls += 1
            self.client.delete_message_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
