"""API token records: only SHA-256 digests are stored, looked up by a short id.

The id is the first 16 hex digits of the digest, so authenticating a presented token is
one GetItem (no index, no scan) followed by a constant-time comparison of the full digest.

Invariant: at least one unbound admin token (scope ``*``, no account) exists once one was
created, so the API can always manage its own tokens. Revoking an unbound admin token is a
transaction: the delete plus a condition check that another unbound admin token (the
*witness*) still exists. Two revokes of the last two admin tokens at the same moment touch
each other's witness, so DynamoDB serializes or cancels them and at most one succeeds;
the other re-reads and is refused with :class:`LastAdminTokenError`. Records never change
after creation, so "the witness exists" is enough to know it is still an unbound admin token.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from pynamodb.exceptions import DeleteError, DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.errors import ConflictError, LastAdminTokenError, TokenNotFoundError
from chalicelib.store.models import TokenItem

TOKEN_ID_HEX_DIGITS = 16
ADMIN_SCOPE = "*"
# A revoke whose witness was revoked meanwhile looks for another one; beyond this many
# rounds the caller is told to retry (only reachable under a storm of concurrent revokes).
REVOKE_ATTEMPTS = 5


@dataclass(frozen=True)
class StoredToken:
    id: str
    description: str
    scopes: tuple[str, ...]
    account: str | None
    created_at: datetime

    @property
    def is_unbound_admin(self) -> bool:
        return ADMIN_SCOPE in self.scopes and self.account is None


def token_id_for_digest(digest_hex: str) -> str:
    return digest_hex[:TOKEN_ID_HEX_DIGITS]


def _from_item(item: TokenItem) -> StoredToken:
    return StoredToken(id=item.id, description=item.description, scopes=tuple(item.scopes or ()),
                       account=item.account, created_at=item.created_at)


def put_token(digest_hex: str, description: str, scopes: list[str], account: str | None) -> StoredToken:
    item = TokenItem(token_id_for_digest(digest_hex), token_sha256=digest_hex, description=description,
                     scopes=scopes, account=account, created_at=datetime.now(UTC))
    item.save()
    return _from_item(item)


def find_by_digest(digest_hex: str) -> StoredToken | None:
    try:
        item = TokenItem.get(token_id_for_digest(digest_hex), consistent_read=True)
    except DoesNotExist:
        return None
    if not hmac.compare_digest(item.token_sha256, digest_hex):
        return None
    return _from_item(item)


def list_tokens() -> list[StoredToken]:
    return sorted((_from_item(item) for item in TokenItem.scan()), key=lambda t: t.created_at)


def _not_found(token_id: str) -> TokenNotFoundError:
    return TokenNotFoundError(f"token {token_id!r} does not exist", details={"id": token_id})


def delete_token(token_id: str) -> None:
    """Revoke a token; never the last unbound admin token (:class:`LastAdminTokenError`)."""
    for _ in range(REVOKE_ATTEMPTS):
        try:
            target = _from_item(TokenItem.get(token_id, consistent_read=True))
        except DoesNotExist:
            raise _not_found(token_id) from None
        if not target.is_unbound_admin:
            _delete_plain(token_id)
            return
        witness = next((token for token in list_tokens() if token.is_unbound_admin and token.id != token_id), None)
        if witness is None:
            raise LastAdminTokenError("this is the last admin token not bound to an account; issue another "
                                      "one before revoking it", details={"id": token_id})
        if _delete_with_witness(token_id, witness.id):
            return
    raise ConflictError("admin tokens are being revoked concurrently; retry", details={"id": token_id})


def _delete_plain(token_id: str) -> None:
    try:
        TokenItem(token_id).delete(condition=TokenItem.id.exists())
    except DeleteError as exc:
        if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
            raise _not_found(token_id) from None
        raise


def _delete_with_witness(token_id: str, witness_id: str) -> bool:
    """Delete ``token_id`` if ``witness_id`` still exists; False when either went meanwhile (or a race).

    The caller reads both again rather than trusting the reasons' positions (pynamodb sends
    condition checks before deletes, whatever order they were added in).
    """
    try:
        with TransactWrite(connection=TokenItem._get_connection().connection) as transaction:
            transaction.delete(TokenItem(token_id), condition=TokenItem.id.exists())
            transaction.condition_check(TokenItem, witness_id, condition=TokenItem.id.exists())
    except TransactWriteError as exc:
        reasons = {reason.code for reason in exc.cancellation_reasons or () if reason is not None}
        if reasons & {"ConditionalCheckFailed", "TransactionConflict"}:
            return False
        raise
    return True


def delete_tokens_of_account(account_id: str) -> int:
    """Revoke every token bound to an account (the account is being deleted)."""
    count = 0
    for item in TokenItem.scan(TokenItem.account == account_id):
        item.delete()
        count += 1
    return count
