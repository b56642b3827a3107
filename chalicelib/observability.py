"""The process-wide Powertools logger (JSON lines; secrets are never passed to it)."""

from __future__ import annotations

from aws_lambda_powertools import Logger

from chalicelib.settings import SERVICE_NAME, get_settings

logger = Logger(service=SERVICE_NAME, level=get_settings().log_level)
