"""One Postfix instance for the tests: SMTP submission with SASL against Dovecot, LMTP delivery.

Config generation, start, the recipient and deferral tables; lifecycle and invariants as
described in ``tests/support/mailservers.py``.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Self

from tests.support.certs import TestPKI
from tests.support.daemons import (
    HOST,
    HOSTNAME,
    START_TIMEOUT_SECONDS,
    Daemon,
    MailServerError,
    binary_path,
    make_server_dir,
    pick_free_ports,
    read_pid,
    run_command,
    start_with_port_retries,
)
from tests.support.dovecot import Dovecot


class Postfix(Daemon):
    """One Postfix instance submitting through SASL (against Dovecot) and delivering by LMTP.

    ``smtp_port`` requires STARTTLS before anything but EHLO; ``smtps_port`` is implicit TLS.
    ``cleartext_smtp_port`` offers no STARTTLS and takes AUTH in cleartext (a misconfigured
    or legacy server). All require AUTH before RCPT, like a provider's submission service.
    """

    NAME = "Postfix"
    PID_FILE = "spool/pid/master.pid"
    LOG_FILE = "postfix.log"
    host = HOST
    hostname = HOSTNAME

    def __init__(self, dovecot: Dovecot, pki: TestPKI) -> None:
        self.dovecot = dovecot
        self.pki = pki
        self.smtp_port = self.smtps_port = self.cleartext_smtp_port = 0
        self.directory: Path | None = None
        self._master_pid: int | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._table_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        if self.directory is not None:
            raise MailServerError("Postfix is already running")
        start_with_port_retries(self._start_once)
        return self

    def _start_once(self) -> None:
        if self.dovecot.directory is None:
            raise MailServerError("start Dovecot before Postfix: it authenticates and stores mail")
        self.directory = make_server_dir("postfix-")
        try:
            self.smtp_port, self.smtps_port, self.cleartext_smtp_port = pick_free_ports(3)
            self.config_dir.mkdir()
            (self.directory / "spool").mkdir()
            # Postfix refuses to start unless its data_directory belongs to mail_owner.
            (self.directory / "data").mkdir()
            shutil.chown(self.directory / "data", "postfix", "postfix")
            for name, text in (("main.cf", self._render_main_cf()), ("master.cf", self._render_master_cf())):
                path = self.config_dir / name
                path.write_text(text)
                # Postfix treats a config file younger than ~2 s as still being written and
                # re-reads it every 300 ms until it is older; backdating saves those 2 s per start.
                backdated = time.time() - 60
                os.utime(path, (backdated, backdated))
            self._unsubscribe = self.dovecot.subscribe_to_users(self._write_recipient_table)
            self._write_recipient_table()
            self.defer_recipients(())
            postfix = binary_path("postfix", "/usr/sbin/postfix")
            # `start` runs `check` first, which creates the queue directories with the right owners.
            run_command([postfix, "-c", str(self.config_dir), "start"], "postfix start", self.log_path)
            self._master_pid = read_pid(self.directory / "spool" / "pid" / "master.pid")
            self._await_banner(self.smtp_port, b"220", time.monotonic() + START_TIMEOUT_SECONDS)
        except BaseException:
            self.stop()
            raise

    def _before_stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    @property
    def config_dir(self) -> Path:
        return self._path("etc")

    def log_text(self) -> str:
        """The whole log while running; "" once stopped (the temp dir is gone)."""
        if self.directory is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    # -- config ----------------------------------------------------------------------------

    def _write_recipient_table(self) -> None:
        """Rebuild the recipient table from Dovecot's users and swap it in atomically.

        Renaming over the old file leaves running smtpd processes holding an unlinked
        file; Postfix notices that before accepting the next connection and restarts the
        process, so the new table is live at once. Rewriting in place would only be noticed
        through the mtime, which has one-second resolution.
        """
        if self.directory is None:
            return
        self._install_table("recipients", "".join(f"{address} OK\n" for address in self.dovecot.user_passwords()))

    # -- test policy: temporary failures -----------------------------------------------------

    def defer_recipients(self, addresses: Iterable[str]) -> None:
        """Answer ``451 4.7.1`` at RCPT TO for ``addresses`` (replacing the previous set).

        For tests of retries after a temporary failure: every other address is handled as
        usual, and an empty set ends the deferral. Like the recipient table, the change is
        live from the next SMTP connection on (a session already open keeps the old table).
        """
        if self.directory is None:
            return
        self._install_table("deferred", "".join(f"{address} 451 4.7.1 Try again later (test policy)\n"
                                                for address in addresses))

    def _install_table(self, name: str, text: str) -> None:
        """Write the lookup table ``name`` and swap it in atomically (see _write_recipient_table)."""
        with self._table_lock:
            source = self.config_dir / f"{name}.next"
            source.write_text(text)
            run_command([binary_path("postmap", "/usr/sbin/postmap"), "-c", str(self.config_dir), f"hash:{source}"],
                        "postmap")
            os.replace(f"{source}.db", self.config_dir / f"{name}.db")
            os.replace(source, self.config_dir / name)

    def _render_main_cf(self) -> str:
        d = self.directory
        lmtp = f"lmtp:inet:{HOST}:{self.dovecot.lmtp_port}"
        return f"""\
compatibility_level = 3.6
queue_directory = {d}/spool
data_directory = {d}/data
maillog_file = {self.log_path}
maillog_file_prefixes = {d}
syslog_name = postfix-test
myhostname = {HOSTNAME}
inet_interfaces = {HOST}
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
# Every domain is "virtual", and the table holds exactly Dovecot's users: any other
# address gets 550 at RCPT, without the 1 s poll that reject_unverified_recipient costs.
virtual_mailbox_domains = static:all
virtual_mailbox_maps = hash:{d}/etc/recipients
virtual_transport = {lmtp}
default_transport = {lmtp}
relay_transport = {lmtp}
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:{HOST}:{self.dovecot.auth_port}
smtpd_sasl_security_options = noanonymous
smtpd_tls_auth_only = yes
smtpd_tls_security_level = may
smtpd_tls_chain_files = {self.pki.key_file}, {self.pki.cert_file}
smtpd_tls_loglevel = 1
smtpd_client_restrictions = permit_sasl_authenticated, reject
smtpd_relay_restrictions = permit_sasl_authenticated, reject
# The deferred table (see defer_recipients) is empty unless a test fills it.
smtpd_recipient_restrictions = check_recipient_access hash:{d}/etc/deferred, reject_unlisted_recipient
disable_vrfy_command = yes
# Dovecot 2.3's LMTP has no SMTPUTF8, so a message that needs it could only bounce after
# acceptance; not offering it makes such a client fail at MAIL FROM instead.
smtputf8_enable = no
# Tests make errors on purpose: no 1 s penalty per error, no disconnect after ten.
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
in_flow_delay = 0s
# A delivery that fails is retried within seconds and gives up within a minute.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
maximal_queue_lifetime = 1m
bounce_queue_lifetime = 1m
"""

    def _render_master_cf(self) -> str:
        # chroot "n" everywhere: a chroot would need copies of /etc files inside the queue dir.
        return f"""\
{HOST}:{self.smtp_port} inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
{HOST}:{self.smtps_port} inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
{HOST}:{self.cleartext_smtp_port} inet n - n - - smtpd
  -o smtpd_tls_security_level=none
  -o smtpd_tls_auth_only=no
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""
