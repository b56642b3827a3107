"""The floor the latency benchmarks compare against: a bare IDLE client on one folder.

Owns :class:`FloorClient`, an imapclient IDLE in a thread of its own that records when each
batch of untagged responses arrives. A benchmark measures the watcher's event against the
first batch after its action that holds one of the response kinds it cares about; nothing
can learn of a change sooner than this client.
"""

from __future__ import annotations

import ssl
import threading
import time

from imapclient import IMAPClient

from tests.support.fixtures import MailUser
from tests.support.mailservers import ImapServer

# What a change in the selected folder looks like in IDLE: new mail, flags, a deletion.
CHANGE_KINDS = (b"EXISTS", b"FETCH", b"EXPUNGE")


class FloorClient:
    """A bare imapclient IDLE on ``folder`` (STARTTLS), recording when each push arrives.

    ``kinds``: the untagged response kinds that count as a push. ``timeout``: the socket
    timeout of the connection (None: imapclient's default, blocking)."""

    def __init__(self, server: ImapServer, user: MailUser, folder: str, *,
                 kinds: tuple[bytes, ...] = CHANGE_KINDS, timeout: float | None = None) -> None:
        self.kinds = kinds
        self.client = IMAPClient(server.hostname, port=server.imap_port, ssl=False, timeout=timeout)
        self.client.starttls(ssl.create_default_context())
        self.client.login(user.email, user.password)
        self.client.select_folder(folder, readonly=True)
        self.pushes: list[tuple[float, list]] = []
        self._stop = threading.Event()
        self.client.idle()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            responses = self.client.idle_check(timeout=0.2)
            if responses:
                self.pushes.append((time.time(), responses))

    def first_push_after(self, started: float, timeout: float = 10.0) -> float | None:
        """When the first push of one of ``kinds`` arrived at or after ``started``; None if
        none arrived within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, responses in list(self.pushes):
                if at >= started and any(r[1] in self.kinds for r in responses
                                         if isinstance(r, tuple) and len(r) > 1):
                    return at
            time.sleep(0.005)
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.client.idle_done()
        self.client.logout()
