"""The mailbox watcher process (``python -m workers.watcher``).

It will keep IMAP connections open and turn mailbox changes into events. Change detection,
account leases and event publishing are not implemented in this module yet: today it
only starts, logs, and waits for SIGTERM/SIGINT, so the local supervisor and deployments
can already manage its lifecycle. It does no work and polls nothing.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger

from chalicelib.settings import get_settings
from workers import wait_for_stop_signal

SERVICE_NAME = "imapless-watcher"


def main() -> int:
    logger = Logger(service=SERVICE_NAME, level=get_settings().log_level)
    logger.info("watcher started", extra={"pid": os.getpid()})
    received = wait_for_stop_signal()
    logger.info("watcher stopped", extra={"pid": os.getpid(), "signal": received.name})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
