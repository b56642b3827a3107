"""API token records: only SHA-256 digests are stored, looked up by a short id.

The id is the first 16 hex digits of the digest, so authenticating a presented token is
one GetItem (no index, no scan) followed by a constant-time comparison of the full digest.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from pynamodb.exceptions import DeleteError, DoesNotExist

from chalicelib.errors import TokenNotFoundError
from chalicelib.store.models import TokenItem

TOKEN_ID_HEX_DIGITS = 16


@dataclass(frozen=True)
class StoredToken:
    id: str
    description: str
    scopes: tuple[str, ...]
    account: str | None
    created_at: datetime


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


def delete_token(token_id: str) -> None:
    try:
        TokenItem(token_id).delete(condition=TokenItem.id.exists())
    except DeleteError as exc:
        if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
            raise TokenNotFoundError(f"token {token_id!r} does not exist", details={"id": token_id}) from None
        raise


def delete_tokens_of_account(account_id: str) -> int:
    """Revoke every token bound to an account (the account is being deleted)."""
    count = 0
    for item in TokenItem.scan(TokenItem.account == account_id):
        item.delete()
        count += 1
    return count
