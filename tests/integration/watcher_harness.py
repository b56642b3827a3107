"""Runs the real watcher as tests need it: ``python -m tests.integration.watcher_harness``.

Same code path as ``python -m workers.watcher``; only the injected parts differ: events
go to the queue named on the command line (a fresh queue per test, so tests never read
each other's events), only accounts whose id starts with ``--account-prefix`` are
watched, and leases live in their own namespace. With ``--aws-call-log FILE`` every AWS
request the process makes is appended to FILE as one line, ``<operation> <table>
[<index>]``, so tests can count what the watcher asks of AWS (the requests still go out).

With ``--publish-log FILE`` every event SQS accepted is appended to FILE as ``<id> <account>
<event>`` (what the watcher sent, for tests that count by event id). With
``--pause-after-publish EVENT`` as well, the first batch holding an ``EVENT`` event is
published and logged, then a ``paused`` line is written and the publishing thread blocks for
good: the process sits between "published" and "checkpoint committed", where a test kills it.
"""

from __future__ import annotations

import argparse
import faulthandler
import signal
import threading
from collections.abc import Sequence

import botocore.client

from chalicelib.events.model import Event
from chalicelib.events.publisher import EventSink, SqsEventSink
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


class LoggingSink:
    """The SQS sink, writing down what SQS accepted; optionally stuck after one batch (see above)."""

    def __init__(self, sink: EventSink, path: str, pause_after: str | None) -> None:
        self._sink = sink
        self._log = open(path, "a", buffering=1)  # line-buffered, open for the life of the process
        self._lock = threading.Lock()
        self._pause_after = pause_after

    def publish(self, events: Sequence[Event]) -> None:
        self._sink.publish(events)
        with self._lock:
            for event in events:
                self._log.write(f"{event.id} {event.account} {event.event}\n")
            pause = self._pause_after is not None and any(e.event == self._pause_after for e in events)
            if pause:
                self._log.write("paused\n")
        if pause:
            threading.Event().wait()  # never returns: this batch's checkpoint is never committed

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--account-prefix", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--aws-call-log")
    parser.add_argument("--publish-log")
    parser.add_argument("--pause-after-publish")
    arguments = parser.parse_args()
    if arguments.aws_call_log:
        log_aws_calls(arguments.aws_call_log)
    # The tests send SIGUSR1 before giving up on a stop: every thread's stack lands in the log.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    prefix = arguments.account_prefix
    sink: EventSink = SqsEventSink(queue_url=arguments.queue_url)
    if arguments.publish_log:
        sink = LoggingSink(sink, arguments.publish_log, arguments.pause_after_publish)
    raise SystemExit(main(sink, namespace=arguments.namespace,
                          account_filter=lambda account: account.startswith(prefix)))
