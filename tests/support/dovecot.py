"""One Dovecot instance for the tests: IMAP (STARTTLS), IMAPS, LMTP and SASL auth for Postfix.

With ``oauth2_introspection_url`` it also takes bearer tokens (``AUTHENTICATE XOAUTH2`` and
``OAUTHBEARER``, and the same through Postfix's SASL) for its users, checked by RFC 7662
introspection against that URL (``tests/support/oauth2_server.py``); passwords keep working.

Config generation, start, users and delivery; lifecycle and invariants as described in
``tests/support/mailservers.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import smtplib
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

from tests.support.certs import TestPKI
from tests.support.daemons import (
    HOST,
    HOSTNAME,
    POLL_INTERVAL_SECONDS,
    START_TIMEOUT_SECONDS,
    Daemon,
    MailServerError,
    binary_path,
    make_server_dir,
    pick_free_ports,
    read_pid,
    run_command,
    start_with_port_retries,
    stop_master,
)

DEFAULT_SPECIAL_USE: dict[str, str] = {
    "Sent": "\\Sent",
    "Drafts": "\\Drafts",
    "Trash": "\\Trash",
    "Archive": "\\Archive",
    "Junk": "\\Junk",
}
# Office 365's post-login CAPABILITY list, plus MOVE (which it also supports): no CONDSTORE,
# QRESYNC or NOTIFY. For a Dovecot that must make clients use their fallbacks.
OFFICE365_LIKE_CAPABILITIES = "IMAP4 IMAP4rev1 SASL-IR UIDPLUS ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+ MOVE"
# Dovecot refuses to deliver to uids below first_valid_uid (500), so mail belongs to nobody.
MAIL_USER = "nobody"
MAIL_GROUP = "nogroup"


class Dovecot(Daemon):
    """One Dovecot instance: IMAP (STARTTLS), IMAPS, LMTP and an auth listener for Postfix."""

    NAME = "Dovecot"
    PID_FILE = "run/master.pid"
    LOG_FILE = "dovecot.log"

    host = HOST
    hostname = HOSTNAME

    def __init__(self, pki: TestPKI, *, separator: str = "/", special_use: dict[str, str] | None = None,
                 quota_kilobytes: int | None = None, tls: bool = True,
                 capabilities: str | None = None, oauth2_introspection_url: str | None = None) -> None:
        """``quota_kilobytes``: a storage quota for every user (the quota plugin), so that a
        test can fill a mailbox until the server answers ``NO [OVERQUOTA]``. ``tls=False``:
        no TLS at all (no STARTTLS offered, no IMAPS listener), like a legacy server that
        only takes passwords in cleartext. ``capabilities``: the CAPABILITY list announced
        after login instead of Dovecot's own (``imap_capability``), to stand in for a server
        without some extension (e.g. Office 365: no CONDSTORE, QRESYNC or NOTIFY).
        ``oauth2_introspection_url``: accept OAuth2 bearer tokens of the users too, valid while
        this introspection endpoint calls them active (``user:secret@`` in it is sent as HTTP Basic)."""
        self.oauth2_introspection_url = oauth2_introspection_url
        self.quota_kilobytes = quota_kilobytes
        self.tls = tls
        if capabilities is not None and not re.fullmatch(r"[A-Za-z0-9=+. -]+", capabilities):
            raise ValueError(f"bad capability list {capabilities!r}")
        self.capabilities = capabilities
        for name, flag in (special_use or {}).items():
            if not flag.startswith("\\") or any(c in name for c in '"\\\n{}'):
                raise ValueError(f"bad special-use mailbox {name!r} -> {flag!r}")
        self.pki = pki
        self.separator = separator
        self.special_use = dict(DEFAULT_SPECIAL_USE if special_use is None else special_use)
        self.imap_port = self.imaps_port = self.lmtp_port = self.auth_port = 0
        self.directory: Path | None = None
        self._users: dict[str, str] = {}
        self._user_listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._master_pid: int | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        if self.directory is not None:
            raise MailServerError("Dovecot is already running")
        start_with_port_retries(self._start_once)
        return self

    def _start_once(self) -> None:
        self.directory = make_server_dir("dovecot-")
        try:
            self.imap_port, self.imaps_port, self.lmtp_port, self.auth_port = pick_free_ports(4)
            mail_dir = self.directory / "mail"
            mail_dir.mkdir()
            shutil.chown(mail_dir, MAIL_USER, MAIL_GROUP)
            self.users_dir.mkdir()
            for address, password in self.user_passwords().items():
                self._write_passwd_file(address, password)
            if self.oauth2_introspection_url is not None:
                self.oauth2_config_path.write_text(self._render_oauth2_config(self.oauth2_introspection_url))
            self.config_path.write_text(self._render_config())
            self._launch()
        except BaseException:
            self.stop()
            raise

    def _launch(self) -> None:
        """Run the master on the written config; return once IMAP answers."""
        run_command([binary_path("dovecot", "/usr/sbin/dovecot"), "-c", str(self.config_path)], "dovecot",
                    self.log_path)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while self._master_pid is None and time.monotonic() < deadline:
            self._master_pid = read_pid(self._path("run") / "master.pid")
            time.sleep(POLL_INTERVAL_SECONDS)
        self._await_banner(self.imap_port, b"* OK", deadline)

    def restart(self, while_stopped: Callable[[], None] | None = None) -> None:
        """An outage: stop every Dovecot process, run ``while_stopped``, then start again with
        the same ports, users and mail. Clients see their connections drop, then refused connects."""
        stop_master(self._master_pid or read_pid(self._path("run") / "master.pid"))
        self._master_pid = None
        if while_stopped is not None:
            while_stopped()
        (self._path("run") / "master.pid").unlink(missing_ok=True)
        self._launch()

    @property
    def config_path(self) -> Path:
        return self._path("dovecot.conf")

    @property
    def oauth2_config_path(self) -> Path:
        return self._path("oauth2.conf.ext")

    @property
    def users_dir(self) -> Path:
        return self._path("users")

    def log_text(self) -> str:
        """The whole log while running; "" once stopped (the temp dir is gone)."""
        if self.directory is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def doveadm(self, *arguments: str) -> str:
        """Run ``doveadm`` against this instance; its standard output."""
        answer = subprocess.run([binary_path("doveadm", "/usr/bin/doveadm"), "-c", str(self.config_path), *arguments],
                                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
        if answer.returncode not in (0, 68):  # 68: "no such user/connection" (kick with nobody left)
            raise MailServerError(f"doveadm {' '.join(arguments)} failed ({answer.returncode}): {answer.stderr}")
        return answer.stdout

    def connections(self, email: str) -> int:
        """How many IMAP connections this Dovecot holds for ``email`` right now."""
        return sum(1 for line in self.doveadm("who", "-1", email).splitlines() if line.split()[:1] == [email])

    def logins(self, email: str | None = None) -> int:
        """IMAP logins this Dovecot has logged so far (of ``email``, or of anyone)."""
        return self.log_text().count(f"Login: user=<{email}>" if email else "imap-login: Info: Login:")

    def kick(self, email: str) -> None:
        """Disconnect every IMAP connection of ``email`` (the server ends them with ``BYE``)."""
        self.doveadm("kick", email)

    # -- users and mail --------------------------------------------------------------------

    def add_user(self, email: str, password: str) -> None:
        """Create an account, usable at once (no reload; see the module docstring)."""
        # The address names a file and both end up in a colon-separated line.
        if "@" not in email or any(c in email for c in ":/\n\r") or any(c in password for c in ":\n\r"):
            raise ValueError("email needs an '@' and no ':' or '/'; neither may contain ':' or a line break")
        with self._lock:
            if email.lower() in self._users:
                raise ValueError(f"user {email} already exists")
            self._users[email.lower()] = password
            if self.directory is not None:
                self._write_passwd_file(email.lower(), password)
            listeners = list(self._user_listeners)
        for listener in listeners:
            listener()

    def user_passwords(self) -> dict[str, str]:
        """Every account, address (lower case, as Dovecot looks it up) -> password."""
        with self._lock:
            return dict(self._users)

    def subscribe_to_users(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after every ``add_user``; returns the unsubscribe function."""
        with self._lock:
            self._user_listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._user_listeners:
                    self._user_listeners.remove(listener)

        return unsubscribe

    def deliver(self, recipient: str, message: bytes, sender: str = "sender@example.test") -> None:
        """Deliver ``message`` straight into ``recipient``'s INBOX over LMTP (no Postfix)."""
        with smtplib.LMTP(HOST, self.lmtp_port, timeout=10) as lmtp:
            lmtp.sendmail(sender, [recipient], message)

    # -- config ----------------------------------------------------------------------------

    def _write_passwd_file(self, address: str, password: str) -> None:
        # Written aside and renamed, so a lookup never sees a half-written file. 0644: the
        # auth process that reads it runs as the unprivileged dovecot user.
        staging = self.users_dir / f".{address}.new"
        staging.write_text(f"{address}:{{PLAIN}}{password}::::::\n")
        staging.chmod(0o644)
        os.replace(staging, self.users_dir / address)

    def _render_ssl(self) -> str:
        if not self.tls:
            return "ssl = no"
        return (f"ssl = yes\nssl_cert = <{self.pki.cert_file}\nssl_key = <{self.pki.key_file}\n"
                "ssl_min_protocol = TLSv1.2")

    def _render_config(self) -> str:
        d = self.directory
        mailboxes = "".join(
            f'  mailbox "{name}" {{\n    special_use = {flag}\n    auto = subscribe\n  }}\n'
            for name, flag in self.special_use.items()
        )
        # A "{" must end its line in dovecot.conf, hence one setting per line throughout.
        return f"""\
base_dir = {d}/run
state_dir = {d}/state
log_path = {self.log_path}
protocols = imap lmtp
listen = {HOST}
{self._render_ssl()}
{f"imap_capability = {self.capabilities}" if self.capabilities else ""}
disable_plaintext_auth = no
auth_mechanisms = plain login{" xoauth2 oauthbearer" if self.oauth2_introspection_url else ""}
auth_verbose = yes
# No extra wait after a failed login (Dovecot still answers failures on its 0.5 s flush
# timer), and imap-login from loopback skips the anti-brute-force penalty.
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
{self._render_oauth2_passdb()}passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN {self.users_dir}/%u
}}
userdb {{
  driver = passwd-file
  args = {self.users_dir}/%u
  default_fields = uid={MAIL_USER} gid={MAIL_GROUP} home={d}/mail/%u
}}
mail_location = maildir:~/Maildir
# All mail processes share one uid; past 128 inotify instances Dovecot falls back to
# polling, and this bounds that fallback's latency.
mailbox_idle_check_interval = 1 secs
namespace inbox {{
  inbox = yes
  separator = {self.separator}
{mailboxes}}}
service imap-login {{
  inet_listener imap {{
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = {self.imaps_port if self.tls else 0}
    ssl = {"yes" if self.tls else "no"}
  }}
  # A few long-lived login processes instead of one per connection.
  service_count = 0
  client_limit = 1000
}}
service imap {{
  process_limit = 1024
}}
service lmtp {{
  inet_listener lmtp {{
    port = {self.lmtp_port}
  }}
}}
service auth {{
  inet_listener {{
    port = {self.auth_port}
  }}
}}
protocol imap {{
  mail_max_userip_connections = 1000
}}
# Without this socket the auth process disables its per-IP penalty (2-15 s added to each
# login after a failure). Logins via imap-login from 127.0.0.0/8 skip it anyway, but
# Postfix's SASL requests do not, and tests fail logins on purpose.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
""" + self._quota_config()

    def _render_oauth2_passdb(self) -> str:
        if self.oauth2_introspection_url is None:
            return ""
        # Bearer tokens only: the password mechanisms never reach this passdb, and tokens never the passwd-file.
        return f"""\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {self.oauth2_config_path}
}}
"""

    @staticmethod
    def _render_oauth2_config(introspection_url: str) -> str:
        # Introspection on every login, not local JWT validation: a revoked token must fail
        # at once, not when its exp passes. The username in the answer must be the login's.
        return f"""\
introspection_mode = post
introspection_url = {introspection_url}
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 5000
"""

    def _quota_config(self) -> str:
        if self.quota_kilobytes is None:
            return ""
        return f"""\
mail_plugins = $mail_plugins quota
plugin {{
  quota = maildir:User quota
  quota_rule = *:storage={self.quota_kilobytes}K
}}
"""
