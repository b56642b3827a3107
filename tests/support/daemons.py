"""Process plumbing the test mail servers share: free ports, pid files, banners, stop.

Owns what is not specific to one server: picking loopback ports, running a server binary
and reading its pid file, waiting for a banner, stopping a master and its whole process
group (or session), and :class:`Daemon`, the lifecycle every test server inherits (Cyrus
and Courier through ``tests/support/unpacked_imap.py``). See ``tests/support/mailservers.py``
for the process layout and the invariants.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

HOST = "127.0.0.1"
# The only name in the test certificate: clients verifying TLS must connect to this name.
HOSTNAME = "localhost"
START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.02
LOG_TAIL_LINES = 60
PORT_RACE_ATTEMPTS = 3
# Where scripts/install-mail-servers.sh unpacks Cyrus and Courier (they conflict with
# dovecot-imapd as packages). Outside the checkout on purpose: the servers drop to their
# own users, which must be able to reach the binaries, and a checkout may sit in a
# directory only root can enter (a mktemp -d clone is mode 0700).
UNPACKED_SERVERS = Path(os.environ.get("IMAPLESS_TEST_SERVERS_DIR", "/opt/imapless-test-servers"))


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


def binary_path(name: str, fallback: str) -> str:
    return shutil.which(name) or fallback


def log_tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    if path is None or not path.exists():
        return "(no log written)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _process_state(stat_text: str) -> tuple[str, int]:
    """(state, process group) from /proc/<pid>/stat; comm (field 2) may contain spaces."""
    fields = stat_text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[2])


def pid_alive(pid: int) -> bool:
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


def live_processes_in_session(sid: int) -> list[int]:
    """Pids (zombies excluded) in session ``sid``: for a server whose processes change their
    process group (Courier's couriertcpd makes itself a group leader) but keep the session."""
    pids = []
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_path.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        if fields[0] not in ("Z", "X") and int(fields[3]) == sid:
            pids.append(int(stat_path.parent.name))
    return pids


def stop_session(sid: int | None) -> None:
    """SIGTERM every process of session ``sid``, wait, then SIGKILL the rest."""
    if sid is None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in live_processes_in_session(sid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if _wait_until(lambda: not live_processes_in_session(sid), STOP_TIMEOUT_SECONDS / 2):
            return
    raise MailServerError(f"processes of session {sid} still alive: {live_processes_in_session(sid)}")


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_INTERVAL_SECONDS)
    return True


def stop_master(master: int | None) -> None:
    """SIGTERM the master (what `doveadm stop` and `postfix stop` send, without their
    1 s polling), wait for it, then SIGKILL whatever is left of its process group.

    Dovecot's master reaps its children before exiting (~1 s); Postfix's signals its group
    and exits at once, so its children may still be exiting when the master is gone.
    """
    if master is None:
        return
    if pid_alive(master):
        with contextlib.suppress(ProcessLookupError):
            os.kill(master, signal.SIGTERM)
        _wait_until(lambda: not pid_alive(master), STOP_TIMEOUT_SECONDS)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(master, signal.SIGKILL)
    if not _wait_until(lambda: not live_processes_in_group(master), STOP_TIMEOUT_SECONDS):
        raise MailServerError(f"processes of group {master} still alive: {live_processes_in_group(master)}")


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def wait_for_banner(port: int, prefix: bytes, deadline: float, alive: Callable[[], bool]) -> bool:
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


def run_command(argv: list[str], what: str, log: Path | None = None) -> None:
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
            f"{what} failed ({' '.join(argv)}, exit {returncode}):\n{text}\n--- log tail ---\n{log_tail(log)}"
        )


def start_with_port_retries(start_once: Callable[[], None]) -> None:
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


def make_server_dir(prefix: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    # mkdtemp makes it 0700; the servers' unprivileged processes must traverse it.
    directory.chmod(0o755)
    return directory


class Daemon:
    """What every server shares: a temp dir while running, a master pid, a log, a context manager."""

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
            self._stop_processes(directory)
        finally:
            self._master_pid = None
            shutil.rmtree(directory, ignore_errors=True)

    def _stop_processes(self, directory: Path) -> None:
        """SIGTERM the master, then SIGKILL what is left of its process group."""
        stop_master(self._master_pid or read_pid(directory / self.PID_FILE))

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

    def _await_banner(self, port: int, prefix: bytes, deadline: float) -> None:
        """Return once the started master answers ``prefix`` on ``port``; raise with the log tail."""
        master = self._master_pid
        if master is None or not wait_for_banner(port, prefix, deadline, lambda: pid_alive(master)):
            raise MailServerError(f"{self.NAME} did not answer on {HOST}:{port} within "
                                  f"{START_TIMEOUT_SECONDS:.0f} s\n--- log tail ---\n{log_tail(self.log_path)}")

    def _path(self, name: str) -> Path:
        if self.directory is None:
            raise MailServerError(f"{self.NAME} is not running")
        return self.directory / name
