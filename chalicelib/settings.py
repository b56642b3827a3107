"""Every environment variable the application reads, typed and documented, read once.

This module is the single place configuration enters the code. Other modules call
:func:`get_settings` and never touch ``os.environ`` themselves, so the table below is
the complete list of knobs (the README repeats it for operators).

Variable                                  Default            Meaning
----------------------------------------  -----------------  ----------------------------------------------
IMAPLESS_RESOURCE_PREFIX                  ``imapless-``      Prefix of every DynamoDB table and SQS queue name
                                                             (``<stack name>-`` on AWS).
IMAPLESS_KEY_PROVIDER                     ``kms``            ``kms`` (AWS KMS data keys) or ``local`` (a key file,
                                                             for the local runner where moto's keys do not survive
                                                             restarts).
IMAPLESS_KMS_KEY_ID                       ``alias/imapless`` KMS key used to wrap per-record data keys.
IMAPLESS_DATA_DIR                         ``./.data``        Local state of ``make run`` (store snapshot, key file).
IMAPLESS_LOCAL_KEY_FILE                   ``<data dir>/master.key``  Key file for ``IMAPLESS_KEY_PROVIDER=local``.
IMAPLESS_ALLOW_PRIVATE_NETWORKS           ``false``          Allow mail servers on loopback/private addresses.
                                                             Link-local and cloud metadata addresses are always
                                                             refused.
IMAPLESS_CONNECT_TIMEOUT_SECONDS          ``10``             TCP connect + TLS handshake + greeting budget.
IMAPLESS_COMMAND_TIMEOUT_SECONDS          ``20``             Budget for one IMAP/SMTP command's answer.
IMAPLESS_MAX_BODY_BYTES                   ``5242880``        Largest accepted request body (413 above it).
IMAPLESS_LOG_LEVEL                        ``INFO``           Log level of the Powertools logger.
-- mail API (mailboxes, messages) --
-- watcher --
-- webhooks --
-- sending --
AWS_REGION / AWS_DEFAULT_REGION           ``us-east-1``      Region of the tables, queues and key.
AWS_ENDPOINT_URL                          (AWS)              Points boto3 and pynamodb at moto locally and in tests.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

SERVICE_NAME = "imapless"


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


@dataclass(frozen=True)
class Settings:
    resource_prefix: str
    key_provider: str
    kms_key_id: str
    data_dir: Path
    local_key_file: Path
    allow_private_networks: bool
    connect_timeout_seconds: float
    command_timeout_seconds: float
    max_body_bytes: int
    log_level: str
    aws_region: str
    # -- mail API (mailboxes, messages) --
    # -- watcher --
    # -- webhooks --
    # -- sending --

    def table_name(self, short_name: str) -> str:
        """Physical DynamoDB table name for a logical one (``accounts`` -> ``imapless-accounts``)."""
        return f"{self.resource_prefix}{short_name}"

    def queue_name(self, short_name: str) -> str:
        """Physical SQS queue name for a logical one; FIFO queues keep their ``.fifo`` suffix."""
        return f"{self.resource_prefix}{short_name}"


def load_settings() -> Settings:
    data_dir = Path(os.environ.get("IMAPLESS_DATA_DIR", "./.data"))
    return Settings(
        resource_prefix=os.environ.get("IMAPLESS_RESOURCE_PREFIX", "imapless-"),
        key_provider=os.environ.get("IMAPLESS_KEY_PROVIDER", "kms").strip().lower(),
        kms_key_id=os.environ.get("IMAPLESS_KMS_KEY_ID", "alias/imapless"),
        data_dir=data_dir,
        local_key_file=Path(os.environ.get("IMAPLESS_LOCAL_KEY_FILE", str(data_dir / "master.key"))),
        allow_private_networks=_env_bool("IMAPLESS_ALLOW_PRIVATE_NETWORKS", False),
        connect_timeout_seconds=_env_float("IMAPLESS_CONNECT_TIMEOUT_SECONDS", 10.0),
        command_timeout_seconds=_env_float("IMAPLESS_COMMAND_TIMEOUT_SECONDS", 20.0),
        max_body_bytes=_env_int("IMAPLESS_MAX_BODY_BYTES", 5 * 1024 * 1024),
        log_level=os.environ.get("IMAPLESS_LOG_LEVEL", "INFO").upper(),
        aws_region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        # -- mail API (mailboxes, messages) --
        # -- watcher --
        # -- webhooks --
        # -- sending --
    )


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return load_settings()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
