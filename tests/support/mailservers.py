"""Real Dovecot and Postfix instances for the test suite, run from temporary directories.

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

import contextlib
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.support.certs import TestPKI

HOST = "127.0.0.1"
# The only name in the test certificate: clients verifying TLS must connect to this name.
HOSTNAME = "localhost"
START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.02
LOG_TAIL_LINES = 60
PORT_RACE_ATTEMPTS = 3

DEFAULT_SPECIAL_USE: dict[str, str] = {
    "Sent": "\\Sent",
    "Drafts": "\\Drafts",
    "Trash": "\\Trash",
    "Archive": "\\Archive",
    "Junk": "\\Junk",
}
# Dovecot refuses to deliver to uids below first_valid_uid (500), so mail belongs to nobody.
MAIL_USER = "nobody"
MAIL_GROUP = "nogroup"


class MailServerError(RuntimeError):
    """A mail server did not start, or a command against it failed."""


def binaries_missing() -> list[str]:
    """Names of the server binaries this module needs that are not installed."""
    wanted = {"dovecot": "/usr/sbin/dovecot", "postfix": "/usr/sbin/postfix", "postmap": "/usr/sbin/postmap"}
    return [name for name, path in wanted.items() if shutil.which(name) is None and not Path(path).exists()]


def pick_free_ports(count: int) -> list[int]:
    """Return ``count`` distinct loopback ports that were free a moment ago."""
    sockets = []
    try:
        # Hold all of them open together, or the kernel may hand out the same port twice.
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _binary(name: str, fallback: str) -> str:
    return shutil.which(name) or fallback


def _tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    if path is None or not path.exists():
        return "(no log written)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _process_state(stat_text: str) -> tuple[str, int]:
    """(state, process group) from /proc/<pid>/stat; comm (field 2) may contain spaces."""
    fields = stat_text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[2])


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` runs. A daemonized master is not our child, so once dead it may
    linger as a zombie until init reaps it; a zombie counts as dead."""
    try:
        state, _ = _process_state(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, IndexError, ValueError):
        return False
    return state not in ("Z", "X")


def live_processes_in_group(pgid: int) -> list[int]:
    """Pids (zombies excluded) in process group ``pgid``. Both masters call setsid, so the
    group whose id is the master's pid holds exactly that server's processes."""
    pids = []
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, group = _process_state(stat_path.read_text())
        except (OSError, IndexError, ValueError):
            continue  # exited while we looked
        if group == pgid and state not in ("Z", "X"):
            pids.append(int(stat_path.parent.name))
    return pids


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_INTERVAL_SECONDS)
    return True


def _stop_master(master: int | None) -> None:
    """SIGTERM the master (what `doveadm stop` and `postfix stop` send, without their
    1 s polling), wait for it, then SIGKILL whatever is left of its process group.

    Dovecot's master reaps its children before exiting (~1 s); Postfix's signals its group
    and exits at once, so its children may still be exiting when the master is gone.
    """
    if master is None:
        return
    if _pid_alive(master):
        with contextlib.suppress(ProcessLookupError):
            os.kill(master, signal.SIGTERM)
        _wait_until(lambda: not _pid_alive(master), STOP_TIMEOUT_SECONDS)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(master, signal.SIGKILL)
    if not _wait_until(lambda: not live_processes_in_group(master), STOP_TIMEOUT_SECONDS):
        raise MailServerError(f"processes of group {master} still alive: {live_processes_in_group(master)}")


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def _wait_for_banner(port: int, prefix: bytes, deadline: float, alive: Callable[[], bool]) -> bool:
    """Poll until a plain-text server on ``port`` greets with ``prefix``."""
    while time.monotonic() < deadline and alive():
        try:
            with socket.create_connection((HOST, port), timeout=1.0) as sock:
                if sock.makefile("rb").readline().startswith(prefix):
                    return True
        except OSError:
            pass
        time.sleep(POLL_INTERVAL_SECONDS)
    return False


def _run(argv: list[str], what: str, log: Path | None = None) -> None:
    # Output goes to a file, not a pipe: the daemons inherit it, and reading a pipe to EOF
    # would wait for the daemon to exit.
    with tempfile.TemporaryFile() as output:
        returncode = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output, timeout=STOP_TIMEOUT_SECONDS
        ).returncode
        output.seek(0)
        text = output.read().decode(errors="replace")
    if returncode != 0:
        raise MailServerError(
            f"{what} failed ({' '.join(argv)}, exit {returncode}):\n{text}\n--- log tail ---\n{_tail(log)}"
        )


def _start_with_port_retries(start_once: Callable[[], None]) -> None:
    """Run ``start_once``, again with new ports if another process took one of them first.

    Ports are picked by binding port 0 and released before the server binds them; in a
    machine running other test suites that gap is a real race, not a theoretical one.
    """
    for attempt in range(1, PORT_RACE_ATTEMPTS + 1):
        try:
            start_once()
            return
        except MailServerError as error:
            if "Address already in use" not in str(error) or attempt == PORT_RACE_ATTEMPTS:
                raise


def _make_server_dir(prefix: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    # mkdtemp makes it 0700; the servers' unprivileged processes must traverse it.
    directory.chmod(0o755)
    return directory


class _Daemon:
    """What both servers share: a temp dir while running, a master pid, a log, a context manager."""

    NAME = ""
    PID_FILE = ""   # relative to the server dir
    LOG_FILE = ""

    directory: Path | None
    _master_pid: int | None

    def _before_stop(self) -> None:
        """Hook run before the master is stopped."""

    def stop(self) -> None:
        directory, self.directory = self.directory, None
        if directory is None:
            return
        try:
            self._before_stop()
            _stop_master(self._master_pid or _read_pid(directory / self.PID_FILE))
        finally:
            self._master_pid = None
            shutil.rmtree(directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()  # type: ignore[attr-defined]

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def master_pid(self) -> int | None:
        return self._master_pid

    @property
    def log_path(self) -> Path:
        return self._path(self.LOG_FILE)

    def _path(self, name: str) -> Path:
        if self.directory is None:
            raise MailServerError(f"{self.NAME} is not running")
        return self.directory / name


class Dovecot(_Daemon):
    """One Dovecot instance: IMAP (STARTTLS), IMAPS, LMTP and an auth listener for Postfix."""

    NAME = "Dovecot"
    PID_FILE = "run/master.pid"
    LOG_FILE = "dovecot.log"

    host = HOST
    hostname = HOSTNAME

    def __init__(self, pki: TestPKI, *, separator: str = "/", special_use: dict[str, str] | None = None,
                 quota_kilobytes: int | None = None, tls: bool = True,
                 capabilities: str | None = None) -> None:
        """``quota_kilobytes``: a storage quota for every user (the quota plugin), so that a
        test can fill a mailbox until the server answers ``NO [OVERQUOTA]``. ``tls=False``:
        no TLS at all (no STARTTLS offered, no IMAPS listener), like a legacy server that
        only takes passwords in cleartext. ``capabilities``: the CAPABILITY list announced
        after login instead of Dovecot's own (``imap_capability``), to stand in for a server
        without some extension (e.g. Office 365: no CONDSTORE, QRESYNC or NOTIFY)."""
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
        _start_with_port_retries(self._start_once)
        return self

    def _start_once(self) -> None:
        self.directory = _make_server_dir("dovecot-")
        try:
            self.imap_port, self.imaps_port, self.lmtp_port, self.auth_port = pick_free_ports(4)
            mail_dir = self.directory / "mail"
            mail_dir.mkdir()
            shutil.chown(mail_dir, MAIL_USER, MAIL_GROUP)
            self.users_dir.mkdir()
            for address, password in self.user_passwords().items():
                self._write_passwd_file(address, password)
            self.config_path.write_text(self._render_config())
            self._launch()
        except BaseException:
            self.stop()
            raise

    def _launch(self) -> None:
        """Run the master on the written config; return once IMAP answers."""
        _run([_binary("dovecot", "/usr/sbin/dovecot"), "-c", str(self.config_path)], "dovecot", self.log_path)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while self._master_pid is None and time.monotonic() < deadline:
            self._master_pid = _read_pid(self._path("run") / "master.pid")
            time.sleep(POLL_INTERVAL_SECONDS)
        master = self._master_pid
        if master is None or not _wait_for_banner(self.imap_port, b"* OK", deadline, lambda: _pid_alive(master)):
            raise MailServerError(
                f"Dovecot did not answer on {HOST}:{self.imap_port} within "
                f"{START_TIMEOUT_SECONDS:.0f} s\n--- log tail ---\n{_tail(self.log_path)}"
            )

    def restart(self, while_stopped: Callable[[], None] | None = None) -> None:
        """An outage: stop every Dovecot process, run ``while_stopped``, then start again with
        the same ports, users and mail. Clients see their connections drop, then refused connects."""
        _stop_master(self._master_pid or _read_pid(self._path("run") / "master.pid"))
        self._master_pid = None
        if while_stopped is not None:
            while_stopped()
        (self._path("run") / "master.pid").unlink(missing_ok=True)
        self._launch()

    @property
    def config_path(self) -> Path:
        return self._path("dovecot.conf")

    @property
    def users_dir(self) -> Path:
        return self._path("users")

    def log_text(self) -> str:
        """The whole log while running; "" once stopped (the temp dir is gone)."""
        if self.directory is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

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
auth_mechanisms = plain login
auth_verbose = yes
# No extra wait after a failed login (Dovecot still answers failures on its 0.5 s flush
# timer), and imap-login from loopback skips the anti-brute-force penalty.
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
passdb {{
  driver = passwd-file
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


class Postfix(_Daemon):
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
        _start_with_port_retries(self._start_once)
        return self

    def _start_once(self) -> None:
        if self.dovecot.directory is None:
            raise MailServerError("start Dovecot before Postfix: it authenticates and stores mail")
        self.directory = _make_server_dir("postfix-")
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
            postfix = _binary("postfix", "/usr/sbin/postfix")
            # `start` runs `check` first, which creates the queue directories with the right owners.
            _run([postfix, "-c", str(self.config_dir), "start"], "postfix start", self.log_path)
            self._master_pid = _read_pid(self.directory / "spool" / "pid" / "master.pid")
            master = self._master_pid
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            if master is None or not _wait_for_banner(self.smtp_port, b"220", deadline, lambda: _pid_alive(master)):
                raise MailServerError(
                    f"Postfix did not answer on {HOST}:{self.smtp_port} within "
                    f"{START_TIMEOUT_SECONDS:.0f} s\n--- log tail ---\n{_tail(self.log_path)}"
                )
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
        with self._table_lock:
            source = self.config_dir / "recipients.next"
            source.write_text("".join(f"{address} OK\n" for address in self.dovecot.user_passwords()))
            _run(
                [_binary("postmap", "/usr/sbin/postmap"), "-c", str(self.config_dir), f"hash:{source}"],
                "postmap",
            )
            os.replace(f"{source}.db", self.config_dir / "recipients.db")
            os.replace(source, self.config_dir / "recipients")

    # -- test policy: temporary failures -----------------------------------------------------

    def defer_recipients(self, addresses: Iterable[str]) -> None:
        """Answer ``451 4.7.1`` at RCPT TO for ``addresses`` (replacing the previous set).

        For tests of retries after a temporary failure: every other address is handled as
        usual, and an empty set ends the deferral. Like the recipient table, the change is
        live from the next SMTP connection on (a session already open keeps the old table).
        """
        if self.directory is None:
            return
        with self._table_lock:
            source = self.config_dir / "deferred.next"
            source.write_text("".join(f"{address} 451 4.7.1 Try again later (test policy)\n"
                                      for address in addresses))
            _run([_binary("postmap", "/usr/sbin/postmap"), "-c", str(self.config_dir), f"hash:{source}"],
                 "postmap")
            os.replace(f"{source}.db", self.config_dir / "deferred.db")
            os.replace(source, self.config_dir / "deferred")

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
