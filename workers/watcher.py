"""The mailbox watcher process (``python -m workers.watcher``): real-time change events.

It watches every active account of the shards it leases, IDLE on INBOX plus NOTIFY (or a
STATUS sweep) for the other folders, and publishes ``messageNew``/``messageUpdated``/...
to the events queue before it moves each checkpoint. Several processes share the
accounts through DynamoDB shard leases; see docs/watcher.md for the whole design.

::

    main thread: Watcher.run ── supervisor tick every few seconds (heartbeat, leases, accounts)
      ├─ thread "idle-multiplexer": selectors over every idling socket + timers
      └─ pool "watch-N" (IMAPLESS_WATCHER_POOL_SIZE threads): per-account sync tasks

SIGTERM or SIGINT stops it cleanly: accounts finish their current step, shard leases are
released and the process's heartbeat row removed, so other processes take over at once.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

from aws_lambda_powertools import Logger

from chalicelib.events.publisher import EventSink, SqsEventSink
from chalicelib.settings import get_settings
from workers.watch.supervisor import Watcher

SERVICE_NAME = "imapless-watcher"


def main(sink: EventSink | None = None, *, namespace: str = "watcher",
         account_filter: Callable[[str], bool] | None = None) -> int:
    settings = get_settings()
    logger = Logger(service=SERVICE_NAME, level=settings.log_level)
    stop = threading.Event()
    received: list[str] = []

    def request_stop(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, request_stop)
    logger.info("watcher started", extra={"pid": os.getpid()})
    Watcher(sink or SqsEventSink(), settings, namespace=namespace, account_filter=account_filter).run(stop)
    logger.info("watcher stopped", extra={"pid": os.getpid(), "signal": received[0] if received else None})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
