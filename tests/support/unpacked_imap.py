"""The lifecycle Cyrus and Courier share: IMAP servers unpacked from their packages, run as our child.

Owns what is the same for the two "unpacked" families (``tests/support/cyrus.py`` and
``tests/support/courier.py``): Debian's naming (every folder under ``INBOX.``, ``.`` as
separator), start with port retries once the binaries are there, the user book kept across
restarts, spawning the master in a session of its own with its output in the server's log,
waiting for a socket the master creates, and reaping the master on stop. Each server module
keeps what is its own: binaries, config, launch command, users and delivery.

Invariants (besides those of ``tests/support/mailservers.py``):
- ``directory`` is set from the start of a start attempt until stop; a failed attempt stops
  whatever it started and removes the directory before the next one.
- The master is our child (``_process``): stop always waits for it, so no zombie outlives a test.
- Users added before start are created at start (``user_passwords``).
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Self

from tests.support.certs import TestPKI
from tests.support.daemons import (
    HOST,
    HOSTNAME,
    POLL_INTERVAL_SECONDS,
    Daemon,
    MailServerError,
    make_server_dir,
    pick_free_ports,
    start_with_port_retries,
)

# Debian configures both with every folder under INBOX. (Cyrus: altnamespace: no,
# unixhierarchysep: no; Courier: Maildir++).
SEPARATOR = "."
PREFIX = "INBOX."


class UnpackedImapServer(Daemon):
    """A master we spawn (IMAP on ``imap_port`` with STARTTLS, IMAPS on ``imaps_port``) in a temp dir."""

    host = HOST
    hostname = HOSTNAME
    separator = SEPARATOR
    prefix = PREFIX
    family = ""  # also the prefix of the server dir's name
    BINARIES: tuple[Path, ...] = ()  # what start checks for (scripts/install-mail-servers.sh installs them)

    def __init__(self, pki: TestPKI, *, pushes_idle: bool) -> None:
        self.pki = pki
        self.pushes_idle = pushes_idle
        self.imap_port = self.imaps_port = 0
        self.directory: Path | None = None
        self._users: dict[str, str] = {}
        # Reentrant: Courier holds it across registering a user and recompiling its userdb.
        self._lock = threading.RLock()
        self._master_pid: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # -- what each server provides ----------------------------------------------------------

    def _prepare(self) -> None:
        """Write config, TLS files and the users into the new ``directory``."""
        raise NotImplementedError

    def _launch(self) -> None:
        """Spawn the master (``_spawn``) and return once it serves IMAP."""
        raise NotImplementedError

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        if self.directory is not None:
            raise MailServerError(f"{self.NAME} is already running")
        missing = [str(path) for path in self.BINARIES if not path.exists()]
        if missing:
            raise MailServerError(f"{self.NAME} binaries missing: {missing}; run scripts/install-mail-servers.sh")
        start_with_port_retries(self._start_once)
        return self

    def _start_once(self) -> None:
        self.directory = make_server_dir(f"{self.family}-")
        try:
            self.imap_port, self.imaps_port = pick_free_ports(2)
            self._prepare()
            self._launch()
        except BaseException:
            self.stop()
            raise

    def _spawn(self, argv: list[str], environment: dict[str, str] | None = None) -> None:
        """Run the master as our child, its output in the log. ``start_new_session``: it leads
        the process group (and session) that stop kills."""
        log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                             env=environment, start_new_session=True)
        finally:
            log.close()
        self._master_pid = self._process.pid

    def _await_path(self, path: Path, failure: str, deadline: float) -> None:
        """Return once the master has created ``path``; raise ``failure`` with the log if it
        exits first or ``deadline`` passes."""
        while not path.exists():
            if time.monotonic() > deadline or self._process is None or self._process.poll() is not None:
                raise MailServerError(f"{failure}\n--- log ---\n{self.log_text()}")
            time.sleep(POLL_INTERVAL_SECONDS)

    def stop(self) -> None:
        process, self._process = self._process, None
        try:
            super().stop()
        finally:
            if process is not None:
                process.wait(timeout=10)  # the master is our child: reap it

    def log_text(self) -> str:
        if self.directory is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    # -- users ------------------------------------------------------------------------------

    def _register_user(self, email: str, password: str) -> str:
        """Remember a new user (its address in lower case, which this returns) for this run
        and every restart; ``ValueError`` if it exists."""
        address = email.lower()
        with self._lock:
            if address in self._users:
                raise ValueError(f"user {email} already exists")
            self._users[address] = password
        return address

    def user_passwords(self) -> dict[str, str]:
        with self._lock:
            return dict(self._users)
