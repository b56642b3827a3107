"""Watcher scale: one process watching 1,000 and 5,000 accounts on one Dovecot.

    .venv/bin/python bench/watcher_scale.py [--accounts 1000] [--samples 30]
    .venv/bin/python bench/watcher_scale.py --accounts 1000,5000     # adds 5,000 (see docs/watcher.md)

``make bench`` runs the default, 1,000 accounts (about 8 minutes).

For each size, on a fresh moto process and a Dovecot tuned for thousands of connections
(``service_count = 0``, high process/client limits; the open-file limit and the inotify
instance limit are raised for the run and restored after), it registers the accounts
(each with the six default folders), starts one watcher process and measures:

    connect all     from the watcher's start to the last ``accountInitialized`` on the queue
                    (login, NOTIFY, baseline of every folder, checkpoint, events)
    AWS calls       requests the watcher made to the emulator while connecting, per account
                    (the emulator answers ~110-150 calls/s here: it bounds "connect all")
    (then it waits until the first IDLE re-issue wave is under way - every connection re-issues
    its IDLE every 270 s, N/270 a second - so what follows is the steady state)
    RSS / account   (watcher RSS once all are idle - RSS of a watcher with no account) / N
    idle CPU        the watcher's CPU time over 30 s with every account idling, in % of one core
    idle AWS calls  requests the watcher made to the emulator over those 30 s, per second
                    (heartbeat, watchlist generation, live workers, shard leases now and then)
    latency         LMTP delivery to a random account -> its messageNew on the queue
                    (SQS SentTimestamp), p50/p95/max over --samples, beside the floor: a bare
                    imapclient IDLE on the same mailbox, receiving the same push
    reconnects      IMAP logins Dovecot saw from the watcher from the steady state's start to the
                    end of the samples (0 expected: re-issuing IDLE keeps the connection)

Goal: RSS per account <= 60 KB. The Dovecot processes (one ``imap`` per connection) are
reported too: on a real deployment they live on the mail provider's side.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import ssl
import tempfile
import time
from pathlib import Path

from imapclient import IMAPClient
from watcher_stack import (
    AwsStack,
    process_cpu_seconds,
    process_rss_kb,
    raise_open_file_limit,
    register_accounts,
    summary,
)
from watcher_stack.scale import Collector, ScaleDovecot, raised_inotify_instances

from chalicelib.settings import get_settings
from tests.integration.watcher_support import WatcherProcess
from tests.support.certs import make_test_pki
from tests.support.mailservers import Dovecot, live_processes_in_group

REISSUE_SECONDS = get_settings().watcher_idle_reissue_seconds
LATE_AFTER_SECONDS = 15  # a sample slower than this is counted as late (reported), not timed
WATCHER_ENVIRONMENT = {"IMAPLESS_WATCHER_CONNECT_RATE": "400", "IMAPLESS_WATCHER_POOL_SIZE": "16",
                       "IMAPLESS_LOG_LEVEL": os.environ.get("BENCH_WATCHER_LOG_LEVEL", "WARNING")}


def floor_client(dovecot: Dovecot, email: str, password: str) -> IMAPClient:
    client = IMAPClient(dovecot.hostname, port=dovecot.imap_port, ssl=False)
    client.starttls(ssl.create_default_context())
    client.login(email, password)
    client.select_folder("INBOX", readonly=True)
    client.idle()
    return client


def first_push(client: IMAPClient, started: float, timeout: float = 15.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for response in client.idle_check(timeout=0.1):
            if isinstance(response, tuple) and len(response) > 1 and response[1] == b"EXISTS":
                return time.time()
    raise TimeoutError("bare IDLE client saw nothing")


def dovecot_rss_mb(dovecot: Dovecot) -> float:
    master = dovecot.master_pid
    return sum(process_rss_kb(pid) for pid in live_processes_in_group(master)) / 1024 if master else 0.0


def run_size(size: int, samples: int, pki) -> dict[str, float]:
    with AwsStack() as aws, ScaleDovecot(pki) as dovecot:
        users = {f"scale-{n:05d}": (f"s{n:05d}-{secrets.token_hex(3)}@example.test", secrets.token_urlsafe(10))
                 for n in range(size)}
        for email, password in users.values():
            dovecot.add_user(email, password)
        started = time.monotonic()
        register_accounts(dovecot, users)
        registered_in = time.monotonic() - started
        queue = Collector()
        idle_watcher = WatcherProcess(queue, "none-", "scale-empty", extra_env=WATCHER_ENVIRONMENT, fast=False)
        time.sleep(6)
        base_rss = process_rss_kb(idle_watcher.process.pid)
        idle_watcher.stop()
        calls_before, own_calls_before = aws.requests(), queue.calls
        watcher = WatcherProcess(queue, "scale-", "scale", extra_env=WATCHER_ENVIRONMENT, fast=False)
        watcher_started = time.time()
        try:
            deadline = time.monotonic() + 900
            while len(queue.initialized_at) < size:
                if time.monotonic() > deadline or watcher.process.poll() is not None:
                    raise RuntimeError(f"{len(queue.initialized_at)}/{size} initialized\n{watcher.log_text()}")
                time.sleep(0.5)
            connect_all = max(queue.initialized_at.values()) - watcher_started
            aws_calls = aws.requests() - calls_before
            watcher_calls = aws_calls - (queue.calls - own_calls_before)
            # Measure the steady state: every account re-issues its IDLE every REISSUE seconds
            # (N / REISSUE re-issues a second), so wait until the first wave is under way.
            time.sleep(max(10.0, watcher_started + REISSUE_SECONDS + 10 - time.time()))
            logins_before = dovecot.logins()
            rss = process_rss_kb(watcher.process.pid)
            cpu_before, wall_before = process_cpu_seconds(watcher.process.pid), time.monotonic()
            idle_calls_before, idle_own_before = aws.requests(), queue.calls
            time.sleep(30)
            idle_seconds = time.monotonic() - wall_before
            idle_cpu = (process_cpu_seconds(watcher.process.pid) - cpu_before) / idle_seconds
            idle_calls = (aws.requests() - idle_calls_before) - (queue.calls - idle_own_before)
            # Printed now: a failure in the latency stage must not lose what was measured.
            print(f"{size} accounts: connect all {connect_all:.1f} s, RSS {rss / 1024:.0f} MB (idle watcher "
                  f"{base_rss / 1024:.0f} MB) = {(rss - base_rss) / size:.1f} KB/account, idle CPU "
                  f"{idle_cpu * 100:.1f} %, {watcher_calls / size:.1f} AWS calls/account", flush=True)
            ours, floor, late = [], [], []
            rng = random.Random(size)
            for account in rng.sample(sorted(users), samples):
                email, password = users[account]
                bare = floor_client(dovecot, email, password)
                seen = len(queue.new_at.get(account, []))
                sent = time.time()
                dovecot.deliver(email, b"Subject: latency probe\r\n\r\nx\r\n")
                floor.append((first_push(bare, sent) - sent) * 1000)
                wait_until = time.monotonic() + LATE_AFTER_SECONDS
                while len(queue.new_at.get(account, [])) <= seen and time.monotonic() < wait_until:
                    time.sleep(0.01)
                if len(queue.new_at.get(account, [])) <= seen:
                    late.append(account)  # counted, not timed: reported beside the percentiles
                    print(f"no messageNew for {account} within {LATE_AFTER_SECONDS} s", flush=True)
                else:
                    ours.append((queue.new_at[account][seen] - sent) * 1000)
                with contextlib.suppress(Exception):
                    bare.idle_done()
                    bare.logout()
            dovecot_mb = dovecot_rss_mb(dovecot)
            reconnects = dovecot.logins() - logins_before - len(floor)  # each floor client logs in once
            if late:
                time.sleep(LATE_AFTER_SECONDS)
                arrived = [account for account in late if queue.new_at.get(account)]
                print(f"{len(late)} samples late; {len(arrived)} of them arrived within another "
                      f"{LATE_AFTER_SECONDS} s\n--- watcher log tail ---\n{watcher.log_text()[-4000:]}", flush=True)
            if not ours:
                raise RuntimeError(f"no sample arrived within {LATE_AFTER_SECONDS} s")
        finally:
            try:
                watcher.stop()
            finally:
                queue.stop()
                queue.delete()
        o50, o95, omax = summary(ours)
        f50, f95, fmax = summary(floor)
        return {"accounts": size, "registered_s": registered_in, "connect_all_s": connect_all,
                "rss_mb": rss / 1024, "base_rss_mb": base_rss / 1024, "rss_per_account_kb": (rss - base_rss) / size,
                "idle_cpu_pct": idle_cpu * 100, "idle_aws_calls_per_s": idle_calls / idle_seconds,
                "ours": (o50, o95, omax), "floor": (f50, f95, fmax), "late": len(late),
                "dovecot_mb": dovecot_mb, "reconnects": reconnects,
                "aws_calls_per_s": aws_calls / connect_all, "watcher_calls_per_account": watcher_calls / size}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", default="1000", help="comma-separated sizes, e.g. 1000,5000")
    parser.add_argument("--samples", type=int, default=30)
    arguments = parser.parse_args()
    sizes = [int(s) for s in arguments.accounts.split(",")]
    files = raise_open_file_limit(max(sizes) * 3 + 1000)
    pki = make_test_pki(Path(tempfile.mkdtemp(prefix="bench-pki-")))
    os.environ["SSL_CERT_FILE"] = str(pki.ca_file)
    results = []
    with raised_inotify_instances(max(sizes) * 2 + 1000) as inotify_note:
        for size in sizes:
            results.append(run_size(size, arguments.samples, pki))
            print(f"{size} accounts: {results[-1]}", flush=True)  # each size's figures, as soon as known
    print(f"\nwatcher scale (one process; open files {files}; inotify instances {inotify_note})")
    print(f"{'accounts':>8} {'connect all':>11} {'RSS':>8} {'RSS/acct':>9} {'idle CPU':>9} | "
          f"{'ours p50':>8} {'p95':>6} {'max':>6} | {'floor p50':>9} {'p95':>6} {'max':>6} | "
          f"{'p95-floor':>9} | {'dovecot RSS':>11} | {'AWS calls/s':>11} {'calls/acct':>10} {'idle calls/s':>12}"
          f" {'reconnects':>10}")
    for r in results:
        o50, o95, omax = r["ours"]
        f50, f95, fmax = r["floor"]
        print(f"{r['accounts']:>8} {r['connect_all_s']:>10.1f}s {r['rss_mb']:>7.0f}M {r['rss_per_account_kb']:>7.1f}KB"
              f" {r['idle_cpu_pct']:>8.1f}% | {o50:>8.0f} {o95:>6.0f} {omax:>6.0f} | {f50:>9.0f} {f95:>6.0f}"
              f" {fmax:>6.0f} | {o95 - f95:>+9.0f} | {r['dovecot_mb']:>10.0f}M | {r['aws_calls_per_s']:>11.0f}"
              f" {r['watcher_calls_per_account']:>10.1f} {r['idle_aws_calls_per_s']:>12.1f} {r['reconnects']:>10}")
    print("AWS calls/s: requests the emulator (moto, one process) answered while the watcher connected; it is"
          " the bottleneck of 'connect all' here, not IMAP. calls/acct: the watcher's own (heartbeat and scans"
          " included). idle calls/s: the watcher's AWS requests per second with every account idle.")
    for r in results:
        if r["late"]:
            print(f"{r['accounts']} accounts: {r['late']} of the latency samples arrived later than "
                  f"{LATE_AFTER_SECONDS} s (not in the percentiles)")
    print("RSS/acct = (RSS with every account idle - RSS of an idle watcher "
          f"{results[0]['base_rss_mb']:.0f}M) / accounts; goal <= 60 KB. Latency in ms, floor = bare IDLE client.")


if __name__ == "__main__":
    main()
