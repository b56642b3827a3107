"""One Courier IMAP 5.0 instance for the tests: IMAP (STARTTLS), IMAPS and Maildir delivery.

Owns config generation, start, users and delivery for Courier, with the same interface as
``tests/support/dovecot.py`` (``add_user``, ``deliver``, ``imap_port``, ``imaps_port``,
``hostname``, ``pki``), so a test can take either server.

Process layout (one process group, one private mount namespace)::

      unshare -m sh launch.sh       /etc/courier  <- bind mount of DIR/etc
       ├─ authdaemond (authuserdb)   /run/courier  <- bind mount of DIR/run
       ├─ couriertcpd 127.0.0.1:imap_port   imaplogin -> imapd  (STARTTLS via couriertls)
       └─ couriertcpd 127.0.0.1:imaps_port  couriertls -server -> imaplogin -> imapd

Why the mount namespace: authlib has ``/etc/courier`` (authdaemonrc, userdb.dat) and
``/run/courier`` (the authdaemon socket) compiled in. Inside its own namespace the test
instance sees its temp dir at those paths and never touches the system's files; every
other path (Maildirs, the userdb source) is read through DIR directly.

Courier behaviours the tests are here for (Debian's defaults unless noted):
- Every folder lives under ``INBOX.`` with ``.`` as separator (Maildir++: ``.Sent``).
- No SPECIAL-USE, no MOVE, no CONDSTORE/QRESYNC, no NOTIFY: roles come from folder names.
- SELECT/EXAMINE answer without ``[UIDNEXT]`` (RFC 3501 allows it); STATUS does answer it.
- ``enhanced_idle=False`` (``IMAP_ENHANCEDIDLE=0``): an IDLE client hears about changes by
  other sessions only when imapd re-reads the Maildir, every ``IMAP_IDLE_TIMEOUT`` (60 s).
  ``enhanced_idle=True``: imapd watches the Maildir through gamin and pushes at once.

Users: a ``userdb`` source file per user under DIR/userdb/, compiled by ``makeuserdb``
into DIR/etc/userdb.dat, which authdaemond re-reads when it changes. Mail belongs to
``nobody``; :meth:`deliver` writes into ``Maildir/tmp`` and renames into ``Maildir/new``,
as any Maildir delivery agent does.

Invariants and failure modes as in ``tests/support/mailservers.py``; must run as root
(mount namespaces, and imapd switching to the mail user after login).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.certs import TestPKI
from tests.support.daemons import (
    HOST,
    HOSTNAME,
    POLL_INTERVAL_SECONDS,
    START_TIMEOUT_SECONDS,
    UNPACKED_SERVERS,
    MailServerError,
    stop_session,
)
from tests.support.unpacked_imap import PREFIX, UnpackedImapServer

# imaplogin and imapd come from the unpacked courier-imap package
# (scripts/install-mail-servers.sh); couriertcpd, couriertls and authlib are installed normally.
UNPACKED = UNPACKED_SERVERS / "courier-imap"
IMAPLOGIN = UNPACKED / "usr" / "lib" / "courier" / "courier" / "imaplogin"
IMAPD = UNPACKED / "usr" / "bin" / "imapd"
COURIERTCPD = Path("/usr/sbin/couriertcpd")
COURIERTLS = Path("/usr/bin/couriertls")
AUTHDAEMOND = Path("/usr/lib/courier/courier-authlib/authdaemond")
MAKEUSERDB = Path("/usr/sbin/makeuserdb")
SYSTEM_DHPARAMS = Path("/etc/courier/dhparams.pem")
MAIL_USER = "nobody"
MAIL_GROUP = "nogroup"
# Debian's IMAP_IDLE_TIMEOUT: how often a polling IDLE re-reads the Maildir.
IDLE_POLL_SECONDS = 60
ROLE_FOLDERS = ("Sent", "Drafts", "Trash", "Archive", "Junk")
# Debian's list (/etc/courier/imapd) minus nothing: what a stock Courier announces.
CAPABILITIES = "IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE"
_delivery_counter = itertools.count()


class Courier(UnpackedImapServer):
    """authdaemond plus two couriertcpd listeners (STARTTLS and implicit TLS) in a mount namespace."""

    NAME = "Courier"
    PID_FILE = ""
    LOG_FILE = "courier.log"
    BINARIES = (IMAPLOGIN, IMAPD, COURIERTCPD, COURIERTLS, AUTHDAEMOND, MAKEUSERDB, Path("/usr/bin/unshare"))

    family = "courier"

    def __init__(self, pki: TestPKI, *, enhanced_idle: bool = False) -> None:
        super().__init__(pki, pushes_idle=enhanced_idle)
        self.enhanced_idle = enhanced_idle

    # -- lifecycle -------------------------------------------------------------------------

    def _prepare(self) -> None:
        for name in ("etc", "run", "run/authdaemon", "userdb", "mail"):
            self._path(name).mkdir()
        shutil.chown(self._path("mail"), MAIL_USER, MAIL_GROUP)
        # couriertls wants key and certificate in one PEM file.
        pem = self._path("etc/imapd.pem")
        pem.touch(mode=0o600)
        pem.write_bytes(self.pki.key_file.read_bytes() + self.pki.cert_file.read_bytes())
        # couriertls drops to the courier user before it reads the file.
        shutil.chown(pem, "courier", "courier")
        if SYSTEM_DHPARAMS.exists():
            shutil.copy(SYSTEM_DHPARAMS, self._path("etc/dhparams.pem"))
        self._path("etc/authdaemonrc").write_text(
            'authmodulelist="authuserdb"\ndaemons=3\nauthdaemonvar=/run/courier/authdaemon\n'
            'DEBUG_LOGIN=0\nDEFAULTOPTIONS=""\nLOGGEROPTS=""\n')
        self._path("userdb").chmod(0o700)
        for address, password in self.user_passwords().items():
            self._write_user(address, password)
        self._compile_userdb()
        self._path("launch.sh").write_text(self._render_launcher())

    def _launch(self) -> None:
        # --propagation private: the bind mounts never leak into the host's namespace.
        self._spawn(["unshare", "-m", "--propagation", "private", "sh", str(self._path("launch.sh"))],
                    self._environment())
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        self._await_path(self._path("run/authdaemon/socket"), "Courier authdaemond did not start", deadline)
        self._await_banner(self.imap_port, b"* OK", deadline)
        self._await_tls_port(deadline)

    def _await_tls_port(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                socket.create_connection((HOST, self.imaps_port), timeout=1.0).close()
                return
            except OSError:
                time.sleep(POLL_INTERVAL_SECONDS)
        raise MailServerError(f"Courier IMAPS did not listen\n--- log ---\n{self.log_text()}")

    def _stop_processes(self, directory: Path) -> None:
        # couriertcpd makes itself a process-group leader, so the group of the launcher
        # does not hold every process; the session (start_new_session) does.
        stop_session(self._master_pid)

    # -- users and mail --------------------------------------------------------------------

    def add_user(self, email: str, password: str) -> None:
        """Create an account with a Maildir and the role folders; usable when this returns."""
        if "@" not in email or any(c in email for c in "/|\t\n\r =") or any(c in password for c in "\n\r"):
            raise ValueError("email needs an '@' and no '/', '|', '=' or white space")
        # Under the lock: two users added at once must not run makeuserdb over each other.
        with self._lock:
            address = self._register_user(email, password)
            if self.directory is not None:
                self._write_user(address, password)
                self._compile_userdb()

    def maildir(self, email: str, folder: str = "INBOX") -> Path:
        """The Maildir of ``folder`` (``INBOX`` or ``INBOX.Sub``) of ``email``."""
        root = self._path("mail") / email.lower() / "Maildir"
        return root if folder == "INBOX" else root / ("." + folder.removeprefix(PREFIX))

    def deliver(self, recipient: str, message: bytes, sender: str = "sender@example.test") -> None:
        """Deliver ``message`` into ``recipient``'s INBOX the Maildir way: write, then rename.

        Lines end in LF in the file, as every Maildir delivery agent writes them: Courier adds
        the CR itself when it serves the message, so a CRLF file would reach clients as
        ``\r\r\n`` (and their header parsers stop at the first such line)."""
        maildir = self.maildir(recipient)
        if not maildir.is_dir():
            raise MailServerError(f"no such Courier user {recipient}")
        name = f"{time.time_ns()}.P{os.getpid()}Q{next(_delivery_counter)}.{HOSTNAME}"
        staging = maildir / "tmp" / name
        staging.write_bytes((b"Return-Path: <" + sender.encode() + b">\r\n" + message).replace(b"\r\n", b"\n"))
        shutil.chown(staging, MAIL_USER, MAIL_GROUP)
        os.rename(staging, maildir / "new" / name)

    def _write_user(self, address: str, password: str) -> None:
        home = self._path("mail") / address
        maildir = home / "Maildir"
        for folder in [maildir, *(maildir / f".{name}" for name in ROLE_FOLDERS)]:
            for sub in ("cur", "new", "tmp"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
            if folder != maildir:
                (folder / "maildirfolder").touch()
        (maildir / "courierimapsubscribed").write_text("".join(f"{PREFIX}{name}\n" for name in ROLE_FOLDERS))
        subprocess.run(["chown", "-R", f"{MAIL_USER}:{MAIL_GROUP}", str(home)], check=True)
        uid, gid = shutil._get_uid(MAIL_USER), shutil._get_gid(MAIL_GROUP)  # type: ignore[attr-defined]
        # authlib accepts {SHA256} hashes (base64 of the digest) besides crypt(3) ones.
        digest = base64.b64encode(hashlib.sha256(password.encode()).digest()).decode()
        entry = f"{address}\tuid={uid}|gid={gid}|home={home}|mail={maildir}|systempw={{SHA256}}{digest}\n"
        source = self._path("userdb") / address
        source.write_text(entry)
        source.chmod(0o600)

    def _compile_userdb(self) -> None:
        # makeuserdb concatenates DIR/userdb/* into DIR/userdb.dat and the passwords into
        # DIR/userdbshadow.dat; authdaemond reads them as /etc/courier/userdb*.dat. Shadow
        # first: a lookup that finds a new user in userdb.dat must find its password too.
        answer = subprocess.run([str(MAKEUSERDB), "-f", str(self._path("userdb"))], capture_output=True, text=True,
                                timeout=20, stdin=subprocess.DEVNULL)
        if answer.returncode != 0:
            raise MailServerError(f"makeuserdb failed: {answer.stderr}")
        os.replace(self._path("userdbshadow.dat"), self._path("etc/userdbshadow.dat"))
        os.replace(self._path("userdb.dat"), self._path("etc/userdb.dat"))

    # -- config ----------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        """What Debian's /etc/courier/imapd and imapd-ssl set, for a private instance."""
        return {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "IMAP_CAPABILITY": CAPABILITIES,
            "IMAP_CAPABILITY_TLS": f"{CAPABILITIES} AUTH=PLAIN",
            "IMAP_KEYWORDS": "1",
            "IMAP_ACL": "1",
            "IMAP_PROXY": "0",
            "IMAP_IDLE_TIMEOUT": str(IDLE_POLL_SECONDS),
            "IMAP_ENHANCEDIDLE": "1" if self.enhanced_idle else "0",
            "IMAP_MAILBOX_SANITY_CHECK": "1",
            "IMAP_DISABLETHREADSORT": "0",
            "IMAP_CHECK_ALL_FOLDERS": "0",
            "IMAP_OBSOLETE_CLIENT": "0",
            "IMAP_UMASK": "022",
            "IMAP_USELOCKS": "1",
            "IMAP_TRASHFOLDERNAME": "Trash",
            # Debian purges Trash messages older than 7 days at login; tests own their Trash.
            "IMAP_EMPTYTRASH": "",
            "IMAP_MOVE_EXPUNGE_TO_TRASH": "0",
            "IMAP_STARTTLS": "YES",
            "IMAP_TLS_REQUIRED": "0",
            "COURIERTLS": str(COURIERTLS),
            "TLS_CERTFILE": "/etc/courier/imapd.pem",
            "TLS_DHPARAMS": "/etc/courier/dhparams.pem",
            "TLS_VERIFYPEER": "NONE",
            "TLS_CACHEFILE": "",
            "MAILDIRPATH": "Maildir",
            "authmodulelist": "authuserdb",
            "daemons": "3",
            "DEBUG_LOGIN": "0",
            "authdaemonvar": "/run/courier/authdaemon",
        }

    def _render_launcher(self) -> str:
        d = self.directory
        tcpd = (f"{COURIERTCPD} -address={HOST} -maxprocs=500 -maxperip=500 -nodnslookup -noidentlookup "
                f"-stderr={d}/imapd.log")
        return f"""\
set -e
mount --bind {d}/etc /etc/courier
mount --bind {d}/run /run/courier
umask 022
{AUTHDAEMOND} &
{tcpd} {self.imap_port} {IMAPLOGIN} {IMAPD} Maildir &
IMAP_TLS=1 {tcpd} {self.imaps_port} {COURIERTLS} -server -tcpd {IMAPLOGIN} {IMAPD} Maildir &
wait
"""
