"""Peak memory of a catch-up over a backlog: bounded passes vs one unbounded pass.

Starts its own Dovecot (temp dir, loopback), records an empty INBOX's checkpoint, appends
``--messages`` messages (as a watcher that was away would find them), then in a fresh
child process per mode syncs INBOX from that checkpoint the way the watcher does
(QRESYNC snapshot, listing FETCH, ``messageNew`` data with text as ``notifyText`` asks,
reconcile; "publishing" drops the events) and reports the child's peak RSS. The baseline
is the same child with no bound on a pass (what the watcher did before bounded passes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tests.support.aws  # noqa: E402,F401 - sets the environment before chalicelib is imported


def child(args: argparse.Namespace) -> None:
    from chalicelib.imap.watch import WatchConnection
    from chalicelib.imap.watch_snapshot import take_snapshot
    from chalicelib.security.transport import MailServer
    from chalicelib.services import notify_content
    from chalicelib.sync.checkpoint import MailboxCheckpoint
    from chalicelib.sync.reconcile import reconcile_mailbox
    from chalicelib.webhooks.configuration import WebhookSettings

    server = MailServer(host=args.host, port=args.port, secure=False, user=args.user)
    connection = WatchConnection.open(server, args.password)
    content = notify_content.request_from(WebhookSettings(notify_text=True))
    checkpoint = MailboxCheckpoint("INBOX", args.uidvalidity, uidnext=1, highestmodseq=args.modseq)
    limit = args.limit or None
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # interpreter, imports, TLS
    started, published, passes = time.perf_counter(), 0, 0
    while True:
        passes += 1
        snapshot = take_snapshot(connection, "INBOX", checkpoint, describe=notify_content.message_new_data,
                                 content=content, limit=limit)
        result = reconcile_mailbox("bench", checkpoint, snapshot)
        published += sum(len(event.to_json()) for event in result.events)  # what the sink would send
        checkpoint = result.checkpoint
        if not snapshot.partial:
            break
    connection.close()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_mb": peak_kb / 1024, "growth_mb": (peak_kb - before_kb) / 1024,
                      "seconds": time.perf_counter() - started, "passes": passes,
                      "event_mb": published / 1e6, "uids": len(checkpoint.uids)}))


def run_child(dovecot, user, uidvalidity: int, modseq: int, limit: int) -> dict:
    command = [sys.executable, __file__, "--child", "--host", dovecot.hostname, "--port", str(dovecot.imap_port),
               "--user", user, "--password", "bench-password", "--uidvalidity", str(uidvalidity),
               "--modseq", str(modseq), "--limit", str(limit)]
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT, env=os.environ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--child", action="store_true")
    for name in ("--host", "--user", "--password"):
        parser.add_argument(name)
    for name in ("--port", "--uidvalidity", "--modseq", "--limit"):
        parser.add_argument(name, type=int, default=0)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from bench.api_latency import build_messages
    from tests.integration.watcher_support import imap_client
    from tests.support.certs import make_test_pki
    from tests.support.mailservers import Dovecot

    workdir = Path(tempfile.mkdtemp(prefix="bench-catchup-"))
    pki = make_test_pki(workdir / "pki")
    os.environ["SSL_CERT_FILE"] = str(pki.ca_file)
    dovecot = Dovecot(pki).start()
    try:
        user = type("User", (), {"email": f"catchup-{secrets.token_hex(3)}@example.test", "password": "bench-password"})
        dovecot.add_user(user.email, user.password)
        client = imap_client(dovecot, user)
        status = client.folder_status("INBOX", [b"UIDVALIDITY", b"HIGHESTMODSEQ"])
        messages = build_messages(args.messages)
        for offset in range(0, len(messages), 250):
            client.multiappend("INBOX", messages[offset:offset + 250])
        client.logout()
        rows = {}
        for name, limit in ((f"bounded passes of {args.batch}", args.batch), ("one unbounded pass (baseline)", 0)):
            rows[name] = run_child(dovecot, user.email, status[b"UIDVALIDITY"], status[b"HIGHESTMODSEQ"], limit)
    finally:
        dovecot.stop()
    baseline = rows["one unbounded pass (baseline)"]
    print(f"catch-up of {args.messages} new messages, notifyText on (events total "
          f"{baseline['event_mb']:.1f} MB)")
    print(f"{'mode':34} {'peak RSS MB':>12} {'growth MB':>10} {'seconds':>8} {'passes':>7} "
          f"{'growth ratio':>12} {'time ratio':>10}")
    for name, row in rows.items():
        print(f"{name:34} {row['peak_mb']:12.1f} {row['growth_mb']:10.1f} {row['seconds']:8.2f} {row['passes']:7d} "
              f"{row['growth_mb'] / baseline['growth_mb']:12.2f} {row['seconds'] / baseline['seconds']:10.2f}")


if __name__ == "__main__":
    main()
