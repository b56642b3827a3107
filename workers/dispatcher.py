"""The webhook dispatcher process (``python -m workers.dispatcher``).

On AWS, webhook delivery is an SQS consumer Lambda; ``chalice local`` runs no SQS
handlers, so locally this process will consume the events queue instead. Delivery
(receiving, signing, posting, retrying) is not implemented in this module yet: today it
only starts, logs, and waits for SIGTERM/SIGINT, so the local supervisor can already
manage its lifecycle. It does no work and polls nothing.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger

from chalicelib.settings import get_settings
from workers import wait_for_stop_signal

SERVICE_NAME = "imapless-dispatcher"


def main() -> int:
    logger = Logger(service=SERVICE_NAME, level=get_settings().log_level)
    logger.info("dispatcher started", extra={"pid": os.getpid()})
    received = wait_for_stop_signal()
    logger.info("dispatcher stopped", extra={"pid": os.getpid(), "signal": received.name})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
