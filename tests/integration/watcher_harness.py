"""Runs the real watcher as tests need it: ``python -m tests.integration.watcher_harness``.

Same code path as ``python -m workers.watcher``; only the injected parts differ: events
go to the queue named on the command line (a fresh queue per test, so tests never read
each other's events), only accounts whose id starts with ``--account-prefix`` are
watched, and leases live in their own namespace. With ``--aws-call-log FILE`` every AWS
request the process makes is appended to FILE as one line, ``<operation> <table>
[<index>]``, so tests can count what the watcher asks of AWS (the requests still go out).
"""

from __future__ import annotations

import argparse
import faulthandler
import signal
import threading

import botocore.client

from chalicelib.events.publisher import SqsEventSink
from workers.watcher import main


def log_aws_calls(path: str) -> None:
    """Append one line per AWS request of this process to ``path``."""
    log = open(path, "a", buffering=1)  # line-buffered, open for the life of the process
    lock = threading.Lock()
    original = botocore.client.BaseClient._make_api_call

    def logged(client, operation_name, params):
        with lock:
            log.write(" ".join([operation_name, params.get("TableName", "-"), params.get("IndexName", "")]).rstrip()
                      + "\n")
        return original(client, operation_name, params)

    botocore.client.BaseClient._make_api_call = logged

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--account-prefix", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--aws-call-log")
    arguments = parser.parse_args()
    if arguments.aws_call_log:
        log_aws_calls(arguments.aws_call_log)
    # The tests send SIGUSR1 before giving up on a stop: every thread's stack lands in the log.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    prefix = arguments.account_prefix
    raise SystemExit(main(SqsEventSink(queue_url=arguments.queue_url), namespace=arguments.namespace,
                          account_filter=lambda account: account.startswith(prefix)))
