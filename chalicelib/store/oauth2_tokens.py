"""The OAuth2 tokens of an account whose tokens we refresh, and the lease that serializes refreshing.

Both live on the account's own item (no second table to keep in step):

- ``sealed_oauth2`` (opaque here) and ``oauth2`` (its metadata: expiry, scopes) are written
  together by :func:`save_tokens`, a compare-and-set on the sealed blob the caller last read,
  with version + 1 so a concurrent read-modify-write of the account (a PUT) fails instead of
  writing old tokens back. It does not bump the watchlist generation: a refresh changes no
  setting the watchers need to re-read.
- ``oauth2_lease_owner``/``oauth2_lease_until``: :func:`take_lease` succeeds when no lease is
  held or the holder's has run out, so at most one process (an API Lambda or a watcher)
  refreshes an account's tokens at a time, across machines. A holder that dies leaves the
  lease to expire after ``seconds``.
"""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import UpdateError

from chalicelib.store.accounts import DELETING
from chalicelib.store.models import AccountItem


def _conditional_failure(exc: Exception) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def take_lease(account_id: str, owner: str, now: float, seconds: float) -> bool:
    """Whether ``owner`` now holds the refresh lease of the account until ``now + seconds``."""
    item = AccountItem(account_id)
    free = AccountItem.oauth2_lease_until.does_not_exist() | (AccountItem.oauth2_lease_until < now)
    try:
        item.update(actions=[AccountItem.oauth2_lease_owner.set(owner),
                             AccountItem.oauth2_lease_until.set(now + seconds)],
                    condition=AccountItem.account.exists() & (AccountItem.state != DELETING)
                    & (free | (AccountItem.oauth2_lease_owner == owner)),
                    add_version_condition=False)
    except UpdateError as exc:
        if _conditional_failure(exc):
            return False
        raise
    return True


def release_lease(account_id: str, owner: str) -> None:
    """Give the lease back if ``owner`` still holds it (else someone else took an expired one)."""
    try:
        AccountItem(account_id).update(
            actions=[AccountItem.oauth2_lease_owner.remove(), AccountItem.oauth2_lease_until.remove()],
            condition=AccountItem.oauth2_lease_owner == owner, add_version_condition=False)
    except UpdateError as exc:
        if not _conditional_failure(exc):
            raise


def save_tokens(account_id: str, sealed: str, metadata: dict[str, Any], *, expected_sealed: str | None) -> bool:
    """Store newly sealed tokens and their metadata if the sealed tokens are still
    ``expected_sealed`` (False: someone else saved tokens meanwhile, or the account is gone)."""
    item = AccountItem(account_id)
    item.version = 0  # makes pynamodb add "version + 1" (see chalicelib.store.accounts.set_account_state)
    unchanged = (AccountItem.sealed_oauth2.does_not_exist() if expected_sealed is None
                 else AccountItem.sealed_oauth2 == expected_sealed)
    try:
        item.update(actions=[AccountItem.sealed_oauth2.set(sealed), AccountItem.oauth2.set(metadata)],
                    condition=AccountItem.account.exists() & (AccountItem.state != DELETING) & unchanged,
                    add_version_condition=False)
    except UpdateError as exc:
        if _conditional_failure(exc):
            return False
        raise
    return True
