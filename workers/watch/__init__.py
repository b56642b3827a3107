"""The watcher's parts: shard assignment, per-account sync, the IDLE multiplexer, the supervisor."""

from aws_lambda_powertools import Logger

from chalicelib.settings import get_settings

# One child logger for every part; its level follows IMAPLESS_LOG_LEVEL like the parent's.
logger = Logger(service="imapless-watcher", child=True, level=get_settings().log_level)
