"""``Idempotency-Key`` records, one DynamoDB partition per account scope.

Powertools' persistence layer writes the records (:mod:`chalicelib.services.idempotency`);
this module owns their key layout and removes an account's records when the account is
deleted. Table ``idempotency-records``, key ``id`` (hash) + ``sk`` (range), TTL on
``expiration``::

    id                      sk                                        status     data
    account#alice~3f9a0c1e  <function>#<sha256 of operation, key>     COMPLETED  <the answer>
    account#bob             ...                                       (a legacy account: bare id)
    account#                ...                                       (a replay across accounts)

Invariants:
- Every record of one account scope (:func:`chalicelib.incarnations.scoped`) lives in the
  partition :func:`partition` names, so an account's records can be found without knowing
  its keys (they are hashes) and none of another scope is ever touched with them.
- Deleting a partition is repeatable: a retried deletion finds less, or nothing.
"""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute
from pynamodb.models import Model

from chalicelib.settings import get_settings

_settings = get_settings()
TABLE = "idempotency-records"


def partition(scope: str) -> str:
    """The partition key of an account scope's records ("" for requests across accounts)."""
    return f"account#{scope}"


class IdempotencyRecordItem(Model):
    """Only the key: Powertools owns the other attributes (status, data, expiration, ...)."""

    class Meta:
        table_name = _settings.table_name(TABLE)
        region = _settings.aws_region

    id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


def delete_records_of_scope(scope: str) -> int:
    """Remove every record of one account scope (account deletion); returns how many."""
    items = list(IdempotencyRecordItem.query(partition(scope), attributes_to_get=["id", "sk"]))
    with IdempotencyRecordItem.batch_write() as batch:
        for item in items:
            batch.delete(item)
    return len(items)
