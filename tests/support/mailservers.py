"""Real Dovecot and Postfix instances for the test suite, run from temporary directories.

Cyrus IMAP (``tests/support/cyrus.py``) and Courier IMAP (``tests/support/courier.py``) follow
the same lifecycle and invariants and offer the same interface (:class:`ImapServer`), so the
mail API and watcher tests run against each family (``imap_family`` in
``tests/support/fixtures.py``).

Owns the lifecycle of the mail servers the integration tests talk to: config generation,
start, readiness, user accounts and stop. Only the Debian binaries are used; the system
services and /etc configs are never touched.

Process layout (every port is a free loopback port picked at start)::

      test code ──IMAP+STARTTLS──▶ imap_port  ┐
                ──IMAPS─────────▶ imaps_port  │ Dovecot (master + children,
                ──LMTP (deliver)─▶ lmtp_port  │ base_dir, mail, log and passwd-files
                                              │ all under one temp dir)
      test code ──SMTP+STARTTLS──▶ smtp_port ─┐
                ──SMTPS─────────▶ smtps_port ─┤ Postfix (own config dir, queue, data dir)
                                              ├─SASL──▶ auth_port  (Dovecot auth)
                                              └─LMTP──▶ lmtp_port  (every recipient)

Invariants:
- ``start()`` returns only once the server answers its banner, or raises ``MailServerError``
  carrying the server's log tail; a failed start leaves nothing running.
- ``stop()`` is idempotent and fine on an already dead server: it sends the master SIGTERM,
  then SIGKILLs whatever is left of the master's process group, waits until the group is
  empty, and removes the temp dir. Fixtures call it in teardown, so a failing test never
  leaves servers behind.
- ``Dovecot.add_user`` is the one way to create users, and a user can log in as soon as it
  returns. Dovecot stats a passwd-file at most once per second and serves its cached copy
  in between, so a shared file would hide a user added in the same second as the last
  lookup. Each user therefore gets its own passwd-file (``users/<address>``): a path
  Dovecot has not seen yet is always read fresh.
- Postfix accepts at RCPT exactly the users of its Dovecot (550 for any other address, in
  any domain), and only from clients that authenticated against that Dovecot; every
  accepted message is delivered by LMTP into it.
- Several instances can run at once: nothing is shared but the binaries.

Failure modes worth knowing:
- Must run as root: Postfix refuses otherwise, and Dovecot switches to the mail user.
- Ports are picked by binding port 0 and released before the server binds them, so another
  process could take one in between; start then retries with new ports (three attempts).
- A Postfix ``smtpd`` already in an SMTP session keeps the recipient table it had when the
  session began; users added during a session are known from the next connection on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from tests.support.certs import TestPKI
from tests.support.daemons import (
    HOST,
    HOSTNAME,
    MailServerError,
    binaries_missing,
    live_processes_in_group,
    pick_free_ports,
)
from tests.support.dovecot import DEFAULT_SPECIAL_USE, Dovecot
from tests.support.postfix import Postfix

__all__ = ["DEFAULT_SPECIAL_USE", "HOST", "HOSTNAME", "Dovecot", "ImapServer", "MailServerError", "Postfix",
           "binaries_missing", "live_processes_in_group", "pick_free_ports"]


class ImapServer(Protocol):
    """What Dovecot, Cyrus (tests/support/cyrus.py) and Courier (tests/support/courier.py)
    all offer, so one test can run against each of them."""

    hostname: str
    imap_port: int   # plain IMAP with STARTTLS
    imaps_port: int  # implicit TLS
    pki: TestPKI

    def add_user(self, email: str, password: str) -> None: ...

    def deliver(self, recipient: str, message: bytes, sender: str = ...) -> None: ...

    @property
    def log_path(self) -> Path: ...
