"""The process-wide Powertools logger (JSON lines; secrets are never passed to it)."""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger

from chalicelib.settings import SERVICE_NAME, get_settings

logger = Logger(service=SERVICE_NAME, level=get_settings().log_level)

# boto's INFO lines ("Found credentials in environment variables") are noise in every
# request log; warnings and errors still come through.
for _name in ("botocore", "boto3", "pynamodb", "urllib3"):
    logging.getLogger(_name).setLevel(logging.WARNING)
