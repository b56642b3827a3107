"""Account records as hot paths read them: one DynamoDB read per account per few seconds.

A warm mail request on a pooled connection costs a few IMAP round trips; reading the
account record every time (to check that its settings and credentials still match the
pooled connection) would cost as much again. Records are cached for
``IMAPLESS_ACCOUNT_CACHE_SECONDS`` (default 5; 0 disables). :mod:`.accounts` forgets an
account when it changes or deletes it, so this process never serves its own stale
record; other processes see a change within the TTL.
"""

from __future__ import annotations

from chalicelib.settings import get_settings
from chalicelib.store import accounts as account_store
from chalicelib.store.accounts import StoredAccount
from chalicelib.ttlcache import TtlCache

_records = TtlCache[StoredAccount](max_entries=4096)


def get_account_cached(account_id: str) -> StoredAccount:
    """The account record, at most ``IMAPLESS_ACCOUNT_CACHE_SECONDS`` old; AccountNotFoundError if none."""
    return _records.get_or_load(account_id, lambda: account_store.get_account(account_id),
                                get_settings().account_cache_seconds)


def forget_account(account_id: str) -> None:
    _records.forget(account_id)
