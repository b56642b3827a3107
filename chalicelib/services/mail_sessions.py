"""An IMAP connection for one request of the mail API: account -> pool -> budgeted connection.

    mail_connection(account)
        account record (cached a few seconds, services.account_records) -> fingerprint of its
        IMAP settings + sealed secrets
        -> process pool (chalicelib.imap.pool) -> warm connection, or lease + connect
        -> ImapConnection bound to a Deadline of IMAPLESS_API_REQUEST_BUDGET_SECONDS

The password is decrypted only when a new connection is opened; a warm request costs no
store read (within the cache TTL) and no KMS call. Failures to connect are reported as upstream failures of
*this* request: 504 ``UpstreamTimeout`` when the server did not answer in time, 503 with
the code of a temporary refusal (``AuthenticationUnavailable``, ``LoginThrottled``,
``MailboxNotConnected``: retry later), 502 with the stable connection code
(``AuthenticationFailed``, ``ConnectionRefused``, ``TLSError``, ...) otherwise.
(Registration reports the same codes with 4xx: there the settings are the caller's input.)
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager

from chalicelib.errors import ApiError, MailServerError, UpstreamTimeoutError
from chalicelib.imap import session as imap_session
from chalicelib.imap.connection import Deadline, ImapConnection
from chalicelib.imap.pool import ConnectionPool, PoolLimits
from chalicelib.imap.session import ImapSession
from chalicelib.services import account_records, accounts, oauth2_app_health
from chalicelib.settings import get_settings
from chalicelib.store.connection_leases import DynamoLeaseBroker
from chalicelib.token_refusal import login_refreshing_once


@functools.lru_cache(maxsize=1)
def get_pool() -> ConnectionPool:
    """The process-wide connection pool (created on first use, never at import)."""
    settings = get_settings()
    limits = PoolLimits(per_account=settings.api_connections_per_account,
                        lease_seconds=settings.imap_lease_seconds,
                        noop_after_seconds=settings.imap_noop_after_seconds,
                        lease_wait_seconds=settings.imap_lease_wait_seconds,
                        command_timeout_seconds=settings.command_timeout_seconds)
    return ConnectionPool(DynamoLeaseBroker(), limits)


def reset_pool() -> None:
    """Close idle connections and forget the pool (tests that change the settings)."""
    if get_pool.cache_info().currsize:
        get_pool().close_all()
    get_pool.cache_clear()


def _fingerprint(imap: dict, sealed_secrets: str) -> str:
    material = json.dumps(imap, sort_keys=True, default=str) + "\0" + sealed_secrets
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def _open(account_id: str, seconds: float) -> ImapSession:
    settings = get_settings()
    try:
        credentials = accounts.load_credentials(account_id)  # an OAuth2 token refresh may fail here

        def login(opened: accounts.AccountCredentials) -> ImapSession:
            if opened.imap is None or opened.imap_secret is None:
                raise ApiError("the account has no IMAP settings", code="NoImapSettings", status=400)
            return imap_session.connect(opened.imap, opened.imap_secret,
                                        connect_timeout=min(settings.connect_timeout_seconds, seconds),
                                        command_timeout=min(settings.command_timeout_seconds, seconds))

        return login_refreshing_once(login, credentials, accounts.refreshed_imap_credentials(account_id, credentials))
    except MailServerError as exc:
        oauth2_app_health.mark_app_invalid(account_id, exc)
        if exc.code == "ConnectionTimeout":
            raise UpstreamTimeoutError(f"the mail server did not answer in time: {exc.message}",
                                       details={"command": "connect"}) from None
        if exc.status != 503:  # a temporary refusal ("retry later") stays one
            exc.status = 502
        raise


@contextmanager
def mail_connection(account_id: str, *, budget_seconds: float | None = None) -> Iterator[ImapConnection]:
    """A logged-in connection for ``account_id`` under the request budget, returned to the pool after."""
    stored = account_records.get_account_cached(account_id)
    if not stored.imap:
        raise ApiError("the account has no IMAP settings", code="NoImapSettings", status=400)
    deadline = Deadline(budget_seconds if budget_seconds is not None else get_settings().api_request_budget_seconds)
    pool = get_pool()
    with pool.connection(account_id, _fingerprint(stored.imap, stored.sealed_secrets),
                         lambda seconds: _open(account_id, seconds), deadline) as connection:
        yield connection
