"""Account records in DynamoDB: create-once, partial updates with optimistic locking, delete.

Callers get and give :class:`StoredAccount` values, never pynamodb objects. The sealed
secrets blob is opaque here: sealing and opening happen in the service layer.

Every create, replace and delete bumps the watchlist generation once it succeeded, so the
watchers re-read the accounts (:mod:`chalicelib.store.watchlist`); the watcher's own state
writes (``set_account_state``) do not.

Deletion is two writes apart: :func:`mark_deleting` moves the record to :data:`DELETING`
(the watcher stops, readers see no account, a concurrent edit fails on the version), the
service removes what the account owns elsewhere, and :func:`delete_account` removes the
record last. A record left in ``deleting`` by an interrupted deletion is the tombstone a
retried DELETE resumes from; its id cannot be registered again until then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, UpdateError

from chalicelib.errors import AccountExistsError, AccountNotFoundError, ConflictError
from chalicelib.incarnations import LEGACY
from chalicelib.store import watchlist  # -- watcher: watchlist generation --
from chalicelib.store.models import AccountItem

DELETING = "deleting"


@dataclass
class StoredAccount:
    account: str
    name: str | None
    email: str | None
    state: str
    imap: dict[str, Any] | None
    smtp: dict[str, Any] | None
    sealed_secrets: str
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    version: int | None = None
    # -- webhooks: per-account override (None: use the global settings) --
    webhooks: str | None = None
    webhook_events: list[str] | None = None
    incarnation: str = LEGACY
    sealed_webhook_secret: str | None = None  # the override endpoint's own signing secrets
    # -- watcher: the error behind an error state, None when connected or new --
    last_error: dict[str, Any] | None = None
    # -- OAuth2 tokens we manage: metadata {app, user, expires, scopes} and the sealed tokens --
    oauth2: dict[str, Any] | None = None
    sealed_oauth2: str | None = None


def _from_item(item: AccountItem) -> StoredAccount:
    return StoredAccount(account=item.account, name=item.name, email=item.email, state=item.state,
                         imap=item.imap, smtp=item.smtp, sealed_secrets=item.sealed_secrets,
                         created_at=item.created_at, updated_at=item.updated_at, version=item.version,
                         webhooks=item.webhooks,
                         webhook_events=list(item.webhook_events) if item.webhook_events is not None else None,
                         sealed_webhook_secret=item.sealed_webhook_secret,
                         incarnation=item.incarnation or LEGACY, last_error=item.last_error,
                         oauth2=item.oauth2, sealed_oauth2=item.sealed_oauth2)


def _is_conditional_failure(exc: Exception) -> bool:
    cause = getattr(exc, "cause_response_code", None)
    return cause == "ConditionalCheckFailedException"


def insert_account(account: StoredAccount) -> StoredAccount:
    """Store a new account; AccountExistsError when the id is taken."""
    item = AccountItem(account.account, name=account.name, email=account.email, state=account.state,
                       imap=account.imap, smtp=account.smtp, sealed_secrets=account.sealed_secrets,
                       created_at=account.created_at, updated_at=account.updated_at,
                       webhooks=account.webhooks, webhook_events=account.webhook_events,
                       sealed_webhook_secret=account.sealed_webhook_secret,
                       incarnation=account.incarnation or None,
                       oauth2=account.oauth2, sealed_oauth2=account.sealed_oauth2)
    try:
        # VersionAttribute makes a first save conditional on the item not existing.
        item.save()
    except PutError as exc:
        if _is_conditional_failure(exc):
            raise AccountExistsError(f"account {account.account!r} already exists",
                                     details={"account": account.account}) from None
        raise
    watchlist.bump_generation()  # -- watcher: watchlist generation --
    return _from_item(item)


def _not_found(account_id: str) -> AccountNotFoundError:
    return AccountNotFoundError(f"account {account_id!r} does not exist", details={"account": account_id})


def get_account(account_id: str) -> StoredAccount:
    """The account; AccountNotFoundError if there is none or it is being deleted."""
    try:
        item = AccountItem.get(account_id, consistent_read=True)
    except DoesNotExist:
        raise _not_found(account_id) from None
    if item.state == DELETING:
        raise _not_found(account_id)
    return _from_item(item)


def get_accounts(account_ids: list[str]) -> dict[str, StoredAccount]:
    """The live accounts among ``account_ids`` by id: one consistent BatchGetItem per 100 ids."""
    return {item.account: _from_item(item) for item in AccountItem.batch_get(set(account_ids), consistent_read=True)
            if item.state != DELETING}


def account_exists(account_id: str) -> bool:
    """Whether the id is taken (an account being deleted still holds it)."""
    return AccountItem.count(account_id, consistent_read=True) > 0


def list_accounts() -> list[StoredAccount]:
    """Every live account, sorted by id (a full scan: fine for the thousands a deployment holds)."""
    return sorted((_from_item(item) for item in AccountItem.scan(AccountItem.state != DELETING)),
                  key=lambda a: a.account)


def replace_account(account: StoredAccount) -> StoredAccount:
    """Write back a changed account; ConflictError if someone else changed it meanwhile."""
    item = AccountItem(account.account, name=account.name, email=account.email, state=account.state,
                       imap=account.imap, smtp=account.smtp, sealed_secrets=account.sealed_secrets,
                       created_at=account.created_at, updated_at=datetime.now(UTC),
                       webhooks=account.webhooks, webhook_events=account.webhook_events,
                       sealed_webhook_secret=account.sealed_webhook_secret,
                       incarnation=account.incarnation or None, last_error=account.last_error,
                       oauth2=account.oauth2, sealed_oauth2=account.sealed_oauth2)
    item.version = account.version
    try:
        item.save()
    except PutError as exc:
        if _is_conditional_failure(exc):
            raise ConflictError(f"account {account.account!r} was changed concurrently; retry",
                                code="ConcurrentUpdate") from None
        raise
    watchlist.bump_generation()  # -- watcher: watchlist generation --
    return _from_item(item)


def mark_deleting(account_id: str) -> StoredAccount:
    """Move the account (in any state, ``deleting`` included) to :data:`DELETING`; version + 1.

    Returns the record as it is now (its incarnation says which leftovers are its own);
    AccountNotFoundError if there is no record at all.
    """
    item = AccountItem(account_id)
    item.version = 0  # makes pynamodb add "version + 1", so a concurrent replace_account fails
    try:
        item.update(actions=[AccountItem.state.set(DELETING)], condition=AccountItem.account.exists(),
                    add_version_condition=False)
    except UpdateError as exc:
        if _is_conditional_failure(exc):
            raise _not_found(account_id) from None
        raise
    watchlist.bump_generation()  # -- watcher: watchlist generation --
    return _from_item(item)


def delete_account(account_id: str) -> None:
    """Remove a record that :func:`mark_deleting` marked; AccountNotFoundError if it is gone."""
    try:
        AccountItem(account_id).delete(condition=AccountItem.account.exists(), add_version_condition=False)
    except DeleteError as exc:
        if _is_conditional_failure(exc):
            raise _not_found(account_id) from None
        raise
    watchlist.bump_generation()  # -- watcher: watchlist generation --


# -- watcher: connection state --
def set_account_state(account_id: str, state: str, *, expected_state: str,
                      last_error: dict[str, Any] | None = None) -> int:
    """Move ``state`` from ``expected_state`` only (UpdateItem on ``state``; version + 1), and
    set ``last_error`` with it (None removes it: the state is not an error).

    Other attributes are left alone; bumping the version makes a concurrent
    read-modify-write of the account (``replace_account``) fail instead of writing the old
    state back. Returns the new version; ConflictError if the state is no longer the
    expected one, AccountNotFoundError if the account is gone.
    """
    item = AccountItem(account_id)
    item.version = 0  # makes pynamodb add "version + 1"; the version itself is not a condition here
    error_action = AccountItem.last_error.set(last_error) if last_error else AccountItem.last_error.remove()
    try:
        item.update(actions=[AccountItem.state.set(state), error_action],
                    condition=AccountItem.account.exists() & (AccountItem.state == expected_state),
                    add_version_condition=False)
    except UpdateError as exc:
        if _is_conditional_failure(exc):
            if not account_exists(account_id):
                raise _not_found(account_id) from None
            raise ConflictError(f"account {account_id!r} state is no longer {expected_state!r}",
                                code="ConcurrentUpdate") from None
        raise
    return int(item.version)


def ping() -> None:
    """Raise if the accounts table cannot be read (health check)."""
    AccountItem.describe_table()
