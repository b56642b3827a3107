"""Runs the real watcher as tests need it: ``python -m tests.integration.watcher_harness``.

Same code path as ``python -m workers.watcher``; only the injected parts differ: events
go to the queue named on the command line (a fresh queue per test, so tests never read
each other's events), only accounts whose id starts with ``--account-prefix`` are
watched, and leases live in their own namespace.
"""

from __future__ import annotations

import argparse
import faulthandler
import signal

from chalicelib.events.publisher import SqsEventSink
from workers.watcher import main

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--account-prefix", required=True)
    parser.add_argument("--namespace", required=True)
    arguments = parser.parse_args()
    # The tests send SIGUSR1 before giving up on a stop: every thread's stack lands in the log.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    prefix = arguments.account_prefix
    raise SystemExit(main(SqsEventSink(queue_url=arguments.queue_url), namespace=arguments.namespace,
                          account_filter=lambda account: account.startswith(prefix)))
