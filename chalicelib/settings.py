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
IMAPLESS_ALLOW_PRIVATE_NETWORKS           ``false``          Allow mail servers on loopback/private addresses
                                                             (RFC 1918, 100.64.0.0/10, fc00::/7, fec0::/10).
                                                             Link-local, cloud metadata and the other ranges of
                                                             ``security/netguard.py`` are always refused.
IMAPLESS_CONNECT_TIMEOUT_SECONDS          ``10``             TCP connect + TLS handshake + greeting budget.
IMAPLESS_COMMAND_TIMEOUT_SECONDS          ``20``             Budget for one IMAP/SMTP command's answer.
IMAPLESS_MAX_BODY_BYTES                   ``5242880``        Largest accepted request body (413 above it).
IMAPLESS_VERIFY_ACCOUNT_PER_MINUTE        ``10``             ``POST /v1/verifyAccount`` calls each token may make per
                                                             minute (a fixed window counted in DynamoDB across
                                                             every process); beyond it 429 ``RateLimited`` with
                                                             Retry-After. At least 1.
IMAPLESS_OAUTH2_REFRESH_AHEAD_SECONDS     ``300``            Refresh an OAuth2 account's access token when it expires
                                                             within this many seconds (0 or more).
IMAPLESS_OAUTH2_TOKEN_ENDPOINT_ENABLED    ``false``          Enable ``GET /v1/account/{account}/oauth-token`` (an
                                                             account's current access token, for unbound tokens);
                                                             off: 403 ``ApiEndpointDisabled``.
IMAPLESS_LOG_LEVEL                        ``INFO``           Log level of the Powertools logger.
-- what one IMAP server can make us read (API and watcher; see chalicelib/imap/limits.py) --
IMAPLESS_IMAP_MAX_LINE_BYTES              ``16777216``       Longest response line (a SEARCH answer without ESEARCH
                                                             is one line: ~1.5 million UIDs). At least 8192.
IMAPLESS_IMAP_MAX_LITERAL_BYTES           ``67108864``       Largest literal a server may announce; a larger one is
                                                             refused before any of it is read. A message fetched
                                                             whole (forwarding with attachments) is one literal:
                                                             at least the largest message to handle (50 MB).
                                                             At least 65536.
IMAPLESS_IMAP_MAX_RESPONSE_BYTES          ``33554432``       Most bytes of one command's answer (lines and
                                                             literals), FETCHes of message content aside (a LIST,
                                                             a SEARCH, the flags of ~500,000 changed messages). At
                                                             least the line cap. Held as Python objects, an
                                                             answer of many short lines takes up to ~10 times
                                                             its size in memory.
IMAPLESS_IMAP_MAX_BODY_RESPONSE_BYTES     ``134217728``      The same for a FETCH of ``BODY[...]``, ``BINARY[...]`` or
                                                             ``RFC822``. At least the literal and response caps.
                                                             Over any of these caps the connection is closed: the
                                                             API answers 502 ``ServerResponseTooLarge``, the
                                                             watcher reports ``connectError`` for the account.
-- mail API (mailboxes, messages) --
IMAPLESS_API_CONNECTIONS_PER_ACCOUNT      ``3``              IMAP connections the API may hold per account, across
                                                             all processes (a DynamoDB lease per connection).
IMAPLESS_IMAP_LEASE_SECONDS               ``60``             Lifetime of a connection lease; also how long an idle
                                                             pooled connection is kept. At least twice the request
                                                             budget.
IMAPLESS_IMAP_NOOP_AFTER_SECONDS          ``30``             A pooled connection idle longer than this is checked
                                                             with NOOP before use.
IMAPLESS_IMAP_LEASE_WAIT_SECONDS          ``3``              How long a request waits for a free connection slot
                                                             before answering 429 with Retry-After.
IMAPLESS_API_REQUEST_BUDGET_SECONDS       ``25``             Upper bound of the IMAP work of one request (504
                                                             ``UpstreamTimeout`` beyond it; API Gateway stops at 29).
IMAPLESS_DOWNLOADS_BUCKET                 (derived)          S3 bucket for bodies too large for a response; default
                                                             ``<prefix>downloads-<account id>-<region>``.
IMAPLESS_DOWNLOAD_URL_SECONDS             ``900``            Lifetime of a presigned download URL.
IMAPLESS_MAX_RESPONSE_BYTES               ``5500000``        Largest response payload sent inline (binary bodies
                                                             count as base64); larger ones go through S3. Also
                                                             the most of a message source or attachment read
                                                             into memory whole: a larger one is streamed.
IMAPLESS_DOWNLOAD_CHUNK_BYTES             ``8388608``        Window of one partial FETCH when a download is
                                                             streamed from IMAP to S3; each window is one S3
                                                             part (at least 5242880, S3's smallest part).
IMAPLESS_TOKEN_CACHE_SECONDS              ``5``              A warm process trusts a verified API token this long
                                                             before reading it again (0: every request); a token
                                                             revoked elsewhere works at most this long.
IMAPLESS_ACCOUNT_CACHE_SECONDS            ``5``              Same for the account record behind a mail request
                                                             (credentials changed elsewhere apply within it).
-- watcher --
IMAPLESS_WATCHER_SHARDS                   ``256``            Accounts are hashed into this many shards; watcher
                                                             processes lease shards. Change only with every
                                                             watcher stopped.
IMAPLESS_WATCHER_POOL_SIZE                ``16``             Threads doing IMAP sync work in one watcher process.
IMAPLESS_WATCHER_ACCOUNT_SCAN_SECONDS     ``2``              How often accounts and leases are re-read (new and
                                                             deleted accounts are picked up within this delay).
IMAPLESS_WATCHER_FULL_SCAN_SECONDS        ``60``             Accounts are re-scanned only when the watchlist
                                                             generation moved, and at least this often (covers a
                                                             writer that died before bumping it).
IMAPLESS_WATCHER_LEASE_SECONDS            ``20``             A watcher that has not heartbeated for this long is
                                                             dead; its shards move to the others.
IMAPLESS_WATCHER_HEARTBEAT_SECONDS        ``5``              Heartbeat interval of a watcher process.
IMAPLESS_WATCHER_IDLE_REISSUE_SECONDS     ``270``            IDLE is ended and re-issued after this long (NAT
                                                             gateways drop idle flows after 350 s).
IMAPLESS_WATCHER_STATUS_POLL_SECONDS      ``10``             STATUS sweep of the other folders on servers without
                                                             NOTIFY.
IMAPLESS_WATCHER_FLAGS_WINDOW             ``1000``           Without CONDSTORE, flags are compared for this many
                                                             newest messages per sync.
IMAPLESS_WATCHER_FLAGS_RECHECK_SECONDS    ``60``             Without CONDSTORE, a folder whose STATUS did not move
                                                             has its flags window re-read this often (STATUS
                                                             shows read/unread changes, not other flags).
IMAPLESS_WATCHER_CONNECTIONS_PER_ACCOUNT  ``2``              Most watcher connections per account (1: everything on
                                                             the IDLE connection).
IMAPLESS_WATCHER_RECONNECT_MIN_SECONDS    ``1``              First reconnect delay; doubles per failure, with jitter.
IMAPLESS_WATCHER_RECONNECT_MAX_SECONDS    ``300``            Longest reconnect delay.
IMAPLESS_WATCHER_CONNECT_RATE             ``50``             New connections per second a watcher opens (staggers
                                                             the reconnect storm after a restart).
IMAPLESS_WATCHER_CATCHUP_BATCH            ``500``            Most new messages one sync pass lists; a larger backlog
                                                             is published and checkpointed in passes of this many
                                                             (bounds the watcher's memory after a long outage).
-- webhooks --
IMAPLESS_WEBHOOK_TIMEOUT_SECONDS          ``10``             Budget of one delivery attempt in all (connect, TLS,
                                                             request, the whole answer), enforced as one deadline; a
                                                             slower receiver counts as failed. Also what one account
                                                             may use of a consumer batch before the rest of its
                                                             events are handed back to the queue.
IMAPLESS_WEBHOOK_RETRY_SCHEDULE           ``5,300,1800,``    Seconds from one attempt to the next, comma-separated;
                                          ``7200,18000,``    the default spans 3.2 days. Anchored to when the event
                                          ``36000,50400,``   was queued (see chalicelib/webhooks/policy.py).
                                          ``72000,86400``
IMAPLESS_WEBHOOK_CONFIG_CACHE_SECONDS     ``5``              How long the watcher reuses the ``notify*`` settings that
                                                             shape ``messageNew`` events (0: every event). Webhook
                                                             consumers read their settings once per batch instead.
IMAPLESS_WEBHOOK_SECRET_OVERLAP_SECONDS   ``86400``          After a signing secret is rotated, how long the old one
                                                             still signs too (both signatures in every request).
IMAPLESS_DISPATCHER_CONCURRENCY           ``8``              Local dispatcher: concurrent receive-and-deliver loops
                                                             (the Lambda equivalent is concurrent invocations).
-- sending --
IMAPLESS_SMTP_POOL_IDLE_SECONDS           ``60``             How long an authenticated SMTP session may stay idle in
                                                             a warm process for reuse (0: no reuse).
IMAPLESS_SEND_RETRY_BASE_SECONDS          ``30``             Delay before the second delivery attempt after a
                                                             temporary failure; doubles per attempt (with jitter).
IMAPLESS_SEND_RETRY_MAX_SECONDS           ``3600``           Longest delay between two delivery attempts.
IMAPLESS_SEND_MAX_MESSAGE_BYTES           ``26214400``       Largest message the API builds (400 ``MessageTooLarge``
                                                             naming the biggest part above it).
IMAPLESS_IDEMPOTENCY_TTL_SECONDS          ``86400``          How long an ``Idempotency-Key`` answers with the first
                                                             result.
-- operations --
IMAPLESS_QUEUES                           (empty)            Comma-separated short names of the stack's queues whose
                                                             depth ``GET /v1/stats`` reports (the packaged template
                                                             sets it from its queues).
IMAPLESS_HEALTH_PORT                      ``8081``           Loopback port of the watcher container's health
                                                             endpoint (``python -m workers.health --probe``).
AWS_REGION / AWS_DEFAULT_REGION           ``us-east-1``      Region of the tables, queues and key.
AWS_ENDPOINT_URL                          (AWS)              Points boto3 and pynamodb at moto locally and in tests.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

SERVICE_NAME = "imapless"
S3_MIN_PART_BYTES = 5 * 1024 * 1024  # every multipart part but the last must be at least this


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


def _env_int_at_least(name: str, default: int, minimum: int) -> int:
    """An integer of at least ``minimum``; anything else fails at start rather than disabling a limit."""
    value = _env_int(name, default)
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")
    return value


def _imap_read_caps() -> tuple[int, int, int, int]:
    """(line, literal, response, body response) caps; each must admit what the smaller ones do."""
    line = _env_int_at_least("IMAPLESS_IMAP_MAX_LINE_BYTES", 16 * 1024 * 1024, 8192)
    literal = _env_int_at_least("IMAPLESS_IMAP_MAX_LITERAL_BYTES", 64 * 1024 * 1024, 65536)
    response = _env_int_at_least("IMAPLESS_IMAP_MAX_RESPONSE_BYTES", 32 * 1024 * 1024, line)
    body = _env_int_at_least("IMAPLESS_IMAP_MAX_BODY_RESPONSE_BYTES", 128 * 1024 * 1024, max(literal, response))
    return line, literal, response, body


def _env_seconds_list(name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """A comma-separated list of whole seconds (``5,300,1800``); each at least 1."""
    raw = os.environ.get(name)
    if not raw or not raw.strip():
        return default
    return tuple(max(1, int(part)) for part in raw.split(",") if part.strip())


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
    verify_account_per_minute: int
    oauth2_refresh_ahead_seconds: int
    oauth2_token_endpoint_enabled: bool
    log_level: str
    aws_region: str
    # -- what one IMAP server can make us read --
    imap_max_line_bytes: int
    imap_max_literal_bytes: int
    imap_max_response_bytes: int
    imap_max_body_response_bytes: int
    # -- mail API (mailboxes, messages) --
    api_connections_per_account: int
    imap_lease_seconds: float
    imap_noop_after_seconds: float
    imap_lease_wait_seconds: float
    api_request_budget_seconds: float
    downloads_bucket: str
    download_url_seconds: int
    max_response_bytes: int
    embed_images_max_bytes: int
    download_chunk_bytes: int
    token_cache_seconds: float
    account_cache_seconds: float
    # -- watcher --
    watcher_shards: int
    watcher_pool_size: int
    watcher_account_scan_seconds: float
    watcher_full_scan_seconds: float
    watcher_lease_seconds: float
    watcher_heartbeat_seconds: float
    watcher_idle_reissue_seconds: float
    watcher_status_poll_seconds: float
    watcher_flags_window: int
    watcher_flags_recheck_seconds: float
    watcher_connections_per_account: int
    watcher_reconnect_min_seconds: float
    watcher_reconnect_max_seconds: float
    watcher_connect_rate: float
    watcher_catchup_batch: int
    # -- webhooks --
    webhook_timeout_seconds: float
    webhook_retry_schedule: tuple[int, ...]
    webhook_config_cache_seconds: float
    webhook_secret_overlap_seconds: float
    dispatcher_concurrency: int
    # -- sending --
    smtp_pool_idle_seconds: float
    send_retry_base_seconds: float
    send_retry_max_seconds: float
    send_max_message_bytes: int
    idempotency_ttl_seconds: int
    # -- operations --
    queues: tuple[str, ...]
    health_port: int

    def table_name(self, short_name: str) -> str:
        """Physical DynamoDB table name for a logical one (``accounts`` -> ``imapless-accounts``)."""
        return f"{self.resource_prefix}{short_name}"

    def queue_name(self, short_name: str) -> str:
        """Physical SQS queue name for a logical one; FIFO queues keep their ``.fifo`` suffix."""
        return f"{self.resource_prefix}{short_name}"


def load_settings() -> Settings:
    data_dir = Path(os.environ.get("IMAPLESS_DATA_DIR", "./.data"))
    line_cap, literal_cap, response_cap, body_response_cap = _imap_read_caps()
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
        verify_account_per_minute=_env_int_at_least("IMAPLESS_VERIFY_ACCOUNT_PER_MINUTE", 10, 1),
        oauth2_refresh_ahead_seconds=_env_int_at_least("IMAPLESS_OAUTH2_REFRESH_AHEAD_SECONDS", 300, 0),
        oauth2_token_endpoint_enabled=_env_bool("IMAPLESS_OAUTH2_TOKEN_ENDPOINT_ENABLED", False),
        log_level=os.environ.get("IMAPLESS_LOG_LEVEL", "INFO").upper(),
        aws_region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        # -- what one IMAP server can make us read --
        imap_max_line_bytes=line_cap,
        imap_max_literal_bytes=literal_cap,
        imap_max_response_bytes=response_cap,
        imap_max_body_response_bytes=body_response_cap,
        # -- mail API (mailboxes, messages) --
        api_connections_per_account=max(1, _env_int("IMAPLESS_API_CONNECTIONS_PER_ACCOUNT", 3)),
        imap_lease_seconds=_env_float("IMAPLESS_IMAP_LEASE_SECONDS", 60.0),
        imap_noop_after_seconds=_env_float("IMAPLESS_IMAP_NOOP_AFTER_SECONDS", 30.0),
        imap_lease_wait_seconds=_env_float("IMAPLESS_IMAP_LEASE_WAIT_SECONDS", 3.0),
        api_request_budget_seconds=_env_float("IMAPLESS_API_REQUEST_BUDGET_SECONDS", 25.0),
        downloads_bucket=os.environ.get("IMAPLESS_DOWNLOADS_BUCKET", ""),
        download_url_seconds=_env_int("IMAPLESS_DOWNLOAD_URL_SECONDS", 900),
        max_response_bytes=_env_int("IMAPLESS_MAX_RESPONSE_BYTES", 5_500_000),
        # data: URLs of embedAttachedImages, in total per message (base64 text, as returned)
        embed_images_max_bytes=_env_int_at_least("IMAPLESS_EMBED_IMAGES_MAX_BYTES", 2_000_000, 0),
        download_chunk_bytes=_env_int_at_least("IMAPLESS_DOWNLOAD_CHUNK_BYTES", 8 * 1024 * 1024,
                                               S3_MIN_PART_BYTES),
        token_cache_seconds=_env_float("IMAPLESS_TOKEN_CACHE_SECONDS", 5.0),
        account_cache_seconds=_env_float("IMAPLESS_ACCOUNT_CACHE_SECONDS", 5.0),
        # -- watcher --
        watcher_shards=max(1, _env_int("IMAPLESS_WATCHER_SHARDS", 256)),
        watcher_pool_size=max(1, _env_int("IMAPLESS_WATCHER_POOL_SIZE", 16)),
        watcher_account_scan_seconds=max(0.1, _env_float("IMAPLESS_WATCHER_ACCOUNT_SCAN_SECONDS", 2.0)),
        watcher_full_scan_seconds=max(0.1, _env_float("IMAPLESS_WATCHER_FULL_SCAN_SECONDS", 60.0)),
        watcher_lease_seconds=max(1.0, _env_float("IMAPLESS_WATCHER_LEASE_SECONDS", 20.0)),
        watcher_heartbeat_seconds=max(0.1, _env_float("IMAPLESS_WATCHER_HEARTBEAT_SECONDS", 5.0)),
        watcher_idle_reissue_seconds=max(1.0, _env_float("IMAPLESS_WATCHER_IDLE_REISSUE_SECONDS", 270.0)),
        watcher_status_poll_seconds=max(0.5, _env_float("IMAPLESS_WATCHER_STATUS_POLL_SECONDS", 10.0)),
        watcher_flags_window=max(1, _env_int("IMAPLESS_WATCHER_FLAGS_WINDOW", 1000)),
        watcher_flags_recheck_seconds=max(0.0, _env_float("IMAPLESS_WATCHER_FLAGS_RECHECK_SECONDS", 60.0)),
        watcher_connections_per_account=max(1, _env_int("IMAPLESS_WATCHER_CONNECTIONS_PER_ACCOUNT", 2)),
        watcher_reconnect_min_seconds=max(0.05, _env_float("IMAPLESS_WATCHER_RECONNECT_MIN_SECONDS", 1.0)),
        watcher_reconnect_max_seconds=max(0.1, _env_float("IMAPLESS_WATCHER_RECONNECT_MAX_SECONDS", 300.0)),
        watcher_connect_rate=max(1.0, _env_float("IMAPLESS_WATCHER_CONNECT_RATE", 50.0)),
        watcher_catchup_batch=max(1, _env_int("IMAPLESS_WATCHER_CATCHUP_BATCH", 500)),
        # -- webhooks --
        webhook_timeout_seconds=_env_float("IMAPLESS_WEBHOOK_TIMEOUT_SECONDS", 10.0),
        webhook_retry_schedule=_env_seconds_list("IMAPLESS_WEBHOOK_RETRY_SCHEDULE",
                                                 (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)),
        webhook_config_cache_seconds=_env_float("IMAPLESS_WEBHOOK_CONFIG_CACHE_SECONDS", 5.0),
        webhook_secret_overlap_seconds=max(0.0, _env_float("IMAPLESS_WEBHOOK_SECRET_OVERLAP_SECONDS", 86400.0)),
        dispatcher_concurrency=max(1, _env_int("IMAPLESS_DISPATCHER_CONCURRENCY", 8)),
        # -- sending --
        smtp_pool_idle_seconds=max(0.0, _env_float("IMAPLESS_SMTP_POOL_IDLE_SECONDS", 60.0)),
        send_retry_base_seconds=max(1.0, _env_float("IMAPLESS_SEND_RETRY_BASE_SECONDS", 30.0)),
        send_retry_max_seconds=max(1.0, _env_float("IMAPLESS_SEND_RETRY_MAX_SECONDS", 3600.0)),
        send_max_message_bytes=_env_int("IMAPLESS_SEND_MAX_MESSAGE_BYTES", 25 * 1024 * 1024),
        idempotency_ttl_seconds=max(60, _env_int("IMAPLESS_IDEMPOTENCY_TTL_SECONDS", 86400)),
        # -- operations --
        queues=tuple(name.strip() for name in os.environ.get("IMAPLESS_QUEUES", "").split(",") if name.strip()),
        health_port=_env_int("IMAPLESS_HEALTH_PORT", 8081),
    )


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return load_settings()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
