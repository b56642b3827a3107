"""STATUS sweep cost for an idle account on a server without CONDSTORE and NOTIFY (as Office 365 is).

    .venv/bin/python bench/sweep_cost.py [--folders 20] [--messages 200] [--seconds 60]

One Dovecot announcing Office 365's capability list (no CONDSTORE, QRESYNC, NOTIFY), moto
in a process, two accounts with the same folders (INBOX + F folders of M messages each) and
the real watcher process at the production sweep period (10 s). Nothing changes while it
runs. Both accounts are watched for the same idle period, each by its own watcher:

    ours       the default: a folder is synced only when its STATUS (MESSAGES, UIDNEXT,
               UIDVALIDITY, UNSEEN) moved; the flags window of the others is re-read every
               IMAPLESS_WATCHER_FLAGS_RECHECK_SECONDS (60 s)
    baseline   IMAPLESS_WATCHER_FLAGS_RECHECK_SECONDS=0: every folder is synced on every
               sweep (EXAMINE, UID SEARCH, flags FETCH), as the watcher did before

Measured: what Dovecot itself accounts for each session of the account (its disconnect log
line: bytes in from the client, bytes out to it), from the first sweep to the stop, and
the number of sweeps. The connect and first baseline are excluded (both sides do the same).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import tempfile
import time
from pathlib import Path

from watcher_stack import AwsStack, register_accounts

from tests.integration.watcher_support import EventQueue, WatcherProcess, imap_client
from tests.support.certs import make_test_pki
from tests.support.dovecot import OFFICE365_LIKE_CAPABILITIES
from tests.support.fixtures import MailUser
from tests.support.mailservers import Dovecot

SESSION_BYTES = re.compile(r"imap\((?P<user>[^)]+)\).*Disconnected.* in=(?P<inb>\d+) out=(?P<outb>\d+)")


def fill(dovecot: Dovecot, user: MailUser, folders: int, messages: int) -> None:
    client = imap_client(dovecot, user)
    for folder in range(folders):
        name = f"Folder{folder:02d}"
        client.create_folder(name)
        for n in range(messages):  # no MULTIAPPEND on this server
            client.append(name, f"Subject: {name} {n}\r\n\r\nbody {n}\r\n".encode())
    client.logout()


def session_bytes(dovecot: Dovecot, email: str) -> tuple[int, int]:
    inbound = outbound = 0
    for match in SESSION_BYTES.finditer(dovecot.log_text()):
        if match["user"] == email:
            inbound += int(match["inb"])
            outbound += int(match["outb"])
    return inbound, outbound


def measure(dovecot: Dovecot, queue: EventQueue, account: str, email: str, seconds: float,
            recheck: str | None) -> dict[str, float]:
    environment = {"IMAPLESS_LOG_LEVEL": "DEBUG"}
    if recheck is not None:
        environment["IMAPLESS_WATCHER_FLAGS_RECHECK_SECONDS"] = recheck
    watcher = WatcherProcess(queue, account, "sweep-" + secrets.token_hex(3), extra_env=environment, fast=False)
    try:
        queue.wait_for(lambda events: queue.of(account, "accountInitialized"), timeout=60, what="initialized")
        time.sleep(seconds)
    finally:
        watcher.stop()
    time.sleep(1.0)  # Dovecot writes the disconnect lines as it notices
    log = watcher.log_text(limit=None)
    sweeps = log.count('"swept"')
    synced = sum(len(re.findall(r'"Folder\d+"', line)) for line in log.splitlines() if '"swept"' in line)
    inbound, outbound = session_bytes(dovecot, email)
    return {"sweeps": sweeps, "folder_syncs": synced, "in": inbound, "out": outbound}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folders", type=int, default=20)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    arguments = parser.parse_args()
    pki = make_test_pki(Path(tempfile.mkdtemp(prefix="bench-pki-")))
    os.environ["SSL_CERT_FILE"] = str(pki.ca_file)
    results = {}
    with AwsStack(), Dovecot(pki, capabilities=OFFICE365_LIKE_CAPABILITIES) as dovecot:
        queue = EventQueue()
        try:
            for name, recheck in (("ours", None), ("baseline", "0")):
                user = MailUser(email=f"sweep-{name}-{secrets.token_hex(3)}@example.test",
                                password=secrets.token_urlsafe(12))
                dovecot.add_user(user.email, user.password)
                fill(dovecot, user, arguments.folders, arguments.messages)
                account = f"sweep-{name}"
                register_accounts(dovecot, {account: (user.email, user.password)})
                # A first run does the account's baseline; the measured run starts from its
                # checkpoints (one catch-up, the same on both sides) and then only sweeps.
                # Dovecot's counters are cumulative per user: the difference is the second run.
                first = measure(dovecot, queue, account, user.email, 0.0, recheck)
                full = measure(dovecot, queue, account, user.email, arguments.seconds, recheck)
                results[name] = {"sweeps": full["sweeps"], "folder_syncs": full["folder_syncs"],
                                 "in": full["in"] - first["in"], "out": full["out"] - first["out"]}
        finally:
            queue.delete()
    ours, base = results["ours"], results["baseline"]
    print(f"\nidle sweep cost, {arguments.folders} folders x {arguments.messages} messages + INBOX, "
          f"{arguments.seconds:.0f} s at the production 10 s sweep (server without CONDSTORE/NOTIFY)")
    print(f"{'':10} {'sweeps':>7} {'folder syncs':>13} {'bytes to server':>16} {'bytes from server':>18}")
    for name, r in results.items():
        print(f"{name:10} {r['sweeps']:>7} {r['folder_syncs']:>13} {r['in']:>16,} {r['out']:>18,}")
    print(f"ratio ours/baseline: bytes to server {ours['in'] / max(1, base['in']):.2f}, "
          f"bytes from server {ours['out'] / max(1, base['out']):.2f}")


if __name__ == "__main__":
    main()
