"""One Cyrus IMAP 3.6 instance for the tests: IMAP (STARTTLS), IMAPS and LMTP delivery.

Owns config generation, start, users and delivery for Cyrus, with the same interface as
``tests/support/dovecot.py`` (``add_user``, ``deliver``, ``imap_port``, ``imaps_port``,
``hostname``, ``pki``), so a test can take either server.

Process layout (everything under one temp dir, owned by ``cyrus:mail``)::

      cyrmaster ─┬─ imapd       127.0.0.1:imap_port   (STARTTLS)
                 ├─ imapd -s    127.0.0.1:imaps_port  (implicit TLS)
                 ├─ lmtpd       DIR/run/socket/lmtp   (``deliver``)
                 └─ idled       DIR/config/socket/idle (only with ``idled=True``)

The two IDLE behaviours real Cyrus servers show:
- ``idled=True``: every imapd registers with idled, which wakes it when a mailbox it
  selected changes: IDLE pushes EXISTS/EXPUNGE/FETCH within milliseconds.
- ``idled=False`` (Debian's shipped cyrus.conf has idled commented out): an IDLE-ing imapd
  looks at its mailbox only every ``imapidlepoll`` seconds (60), so changes made by other
  sessions (new mail, another client's flags) reach an IDLE client up to 60 s late.

Naming, as Debian configures Cyrus (``altnamespace: no``, ``unixhierarchysep: no``):
every folder lives under ``INBOX.`` with ``.`` as separator (``INBOX.Sent``); SPECIAL-USE
is supported (``CREATE INBOX.Sent (USE (\\Sent))``), and :meth:`add_user` creates the
usual role folders with their attributes, like Dovecot's ``auto = subscribe`` mailboxes.

Users are ``local@domain`` addresses; ``virtdomains: userid`` splits them so the domain's
dots never reach a mailbox name. Passwords live in a private sasldb; a new user's INBOX is
created by the first login or delivery (``autocreate_quota``).

Invariants and failure modes as in ``tests/support/mailservers.py``; must run as root (the
master drops to the ``cyrus`` user, which must own every path it writes).
"""

from __future__ import annotations

import shutil
import smtplib
import ssl
import subprocess
import time
from pathlib import Path

from imapclient import IMAPClient

from tests.support.certs import TestPKI
from tests.support.daemons import HOST, HOSTNAME, START_TIMEOUT_SECONDS, UNPACKED_SERVERS, MailServerError
from tests.support.unpacked_imap import PREFIX, UnpackedImapServer

# imapd and idled come from the unpacked cyrus-imapd package (scripts/install-mail-servers.sh);
# the master, lmtpd and the database tools from cyrus-common, installed normally.
UNPACKED_BIN = UNPACKED_SERVERS / "cyrus-imapd" / "usr" / "lib" / "cyrus" / "bin"
COMMON_BIN = Path("/usr/lib/cyrus/bin")
SASLPASSWD = "/usr/sbin/saslpasswd2"
CYRUS_USER = "cyrus"
CYRUS_GROUP = "mail"
# Debian's default IDLE poll when idled does not run.
IDLE_POLL_SECONDS = 60
ROLE_FOLDERS: dict[str, str] = {
    "Sent": "\\Sent",
    "Drafts": "\\Drafts",
    "Trash": "\\Trash",
    "Archive": "\\Archive",
    "Junk": "\\Junk",
}


class Cyrus(UnpackedImapServer):
    """One Cyrus master with IMAP, IMAPS, LMTP over a Unix socket and, optionally, idled."""

    NAME = "Cyrus"
    PID_FILE = "run/master.pid"
    LOG_FILE = "master.log"
    BINARIES = (UNPACKED_BIN / "imapd", UNPACKED_BIN / "idled", COMMON_BIN / "master", COMMON_BIN / "lmtpd",
                COMMON_BIN / "ctl_cyrusdb", Path(SASLPASSWD))

    family = "cyrus"

    def __init__(self, pki: TestPKI, *, idled: bool = True) -> None:
        super().__init__(pki, pushes_idle=idled)
        self.idled = idled

    # -- lifecycle -------------------------------------------------------------------------

    def _prepare(self) -> None:
        for name in ("config", "config/socket", "config/db", "spool", "run", "run/socket", "run/proc",
                     "run/lock", "sieve", "tls"):
            self._path(name).mkdir(parents=True, exist_ok=True)
        # The imapd children read the key after dropping to the cyrus user.
        shutil.copy(self.pki.cert_file, self._path("tls/cert.pem"))
        shutil.copy(self.pki.key_file, self._path("tls/key.pem"))
        self._path("imapd.conf").write_text(self._render_imapd_conf())
        self._path("cyrus.conf").write_text(self._render_cyrus_conf())
        self._path("sasldb2").touch()
        subprocess.run(["chown", "-R", f"{CYRUS_USER}:{CYRUS_GROUP}", str(self.directory)], check=True)
        for address, password in self.user_passwords().items():
            self._set_password(address, password)

    def _launch(self) -> None:
        # cyrmaster -D stays in the foreground. Its children log to syslog, which this machine
        # lacks; -D and the log file keep at least the master's own complaints.
        self._spawn([str(COMMON_BIN / "master"), "-D", "-C", str(self._path("imapd.conf")),
                     "-M", str(self._path("cyrus.conf")), "-p", str(self._path(self.PID_FILE))])
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        self._await_path(self.lmtp_socket, f"Cyrus did not create {self.lmtp_socket}", deadline)
        if self.idled:
            # imapd registers with idled when it starts IDLE, so idled must be up before the
            # first test IDLEs, or that session silently falls back to polling.
            self._await_path(self._path("config/socket/idle"), "Cyrus idled did not start", deadline)
        self._await_banner(self.imap_port, b"* OK", deadline)

    @property
    def lmtp_socket(self) -> Path:
        return self._path("run/socket/lmtp")

    # -- users and mail --------------------------------------------------------------------

    def add_user(self, email: str, password: str) -> None:
        """Create an account with INBOX and the role folders; usable when this returns."""
        local, _, domain = email.lower().partition("@")
        if not local or not domain or "." in local or any(c in email for c in " \n\r/"):
            raise ValueError("email must be local@domain with no '.' in the local part")
        address = self._register_user(email, password)
        if self.directory is not None:
            self._set_password(address, password)
            self._create_role_folders(address, password)

    def deliver(self, recipient: str, message: bytes, sender: str = "sender@example.test") -> None:
        """Deliver ``message`` into ``recipient``'s INBOX over LMTP."""
        with smtplib.LMTP(str(self.lmtp_socket), timeout=10) as lmtp:
            lmtp.sendmail(sender, [recipient], message)

    def _set_password(self, address: str, password: str) -> None:
        local, _, domain = address.partition("@")
        answer = subprocess.run([SASLPASSWD, "-p", "-c", "-f", str(self._path("sasldb2")), "-u", domain, local],
                                input=password + "\n", capture_output=True, text=True, timeout=10)
        if answer.returncode != 0:
            raise MailServerError(f"saslpasswd2 failed: {answer.stderr}")
        shutil.chown(self._path("sasldb2"), CYRUS_USER, CYRUS_GROUP)

    def _create_role_folders(self, address: str, password: str) -> None:
        # The first login autocreates INBOX; the role folders get their SPECIAL-USE
        # attributes, as a provisioning script (or Cyrus' autocreate_inbox_folders) would.
        context = ssl.create_default_context(cafile=str(self.pki.ca_file))
        with IMAPClient(HOSTNAME, port=self.imaps_port, ssl=True, ssl_context=context, timeout=10) as client:
            client.login(address, password)
            for name, flag in ROLE_FOLDERS.items():
                client._imap._simple_command("CREATE", client._imap._quote(PREFIX + name),
                                             f"(USE ({flag}))")
                client.subscribe_folder(PREFIX + name)
            client.subscribe_folder("INBOX")
            client.logout()

    # -- config ----------------------------------------------------------------------------

    def _render_imapd_conf(self) -> str:
        d = self.directory
        return f"""\
configdirectory: {d}/config
defaultpartition: default
partition-default: {d}/spool
proc_path: {d}/run/proc
mboxname_lockpath: {d}/run/lock
lmtpsocket: {d}/run/socket/lmtp
idlesocket: {d}/config/socket/idle
notifysocket: {d}/run/socket/notify
sievedir: {d}/sieve
altnamespace: no
unixhierarchysep: no
virtdomains: userid
defaultdomain: localhost
lmtp_downcase_rcpt: yes
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {d}/sasldb2
sasl_mech_list: PLAIN LOGIN
autocreate_quota: 0
autocreate_post: 1
imapidlepoll: {IDLE_POLL_SECONDS}
tls_server_cert: {d}/tls/cert.pem
tls_server_key: {d}/tls/key.pem
tls_versions: tls1_2 tls1_3
specialusealways: 1
umask: 077
syslog_prefix: cyrus-test
"""

    def _render_cyrus_conf(self) -> str:
        d = self.directory
        conf = f"-C {d}/imapd.conf"
        imapd = UNPACKED_BIN / "imapd"
        idled = f'  idled cmd="{UNPACKED_BIN / "idled"} {conf}"\n' if self.idled else ""
        return f"""\
START {{
  recover cmd="{COMMON_BIN / 'ctl_cyrusdb'} {conf} -r"
}}
SERVICES {{
  imap cmd="{imapd} {conf}" listen="{HOST}:{self.imap_port}" prefork=1 maxchild=200
  imaps cmd="{imapd} -s {conf}" listen="{HOST}:{self.imaps_port}" prefork=1 maxchild=200
  lmtpunix cmd="{COMMON_BIN / 'lmtpd'} {conf}" listen="{d}/run/socket/lmtp" prefork=1 maxchild=20
}}
EVENTS {{
}}
DAEMON {{
{idled}}}
"""
