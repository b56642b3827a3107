"""``Idempotency-Key`` records, one DynamoDB partition per account scope.

Powertools' persistence layer writes the records (:mod:`chalicelib.services.idempotency`);
this module owns their key layout and removes an account's records when the account is
deleted. Table ``idempotency-records``, key ``id`` (hash) + ``sk`` (range), TTL on
``expiration``::

    id                      sk                                        status     data
    account#alice~3f9a0c1e  <function>#<sha256 of operation, key>     COMPLETED  <the answer>
    account#bob             ...                                       (a legacy account: bare id)
    account#                ...                                       (a replay across accounts)
    account#alice~3f9a0c1e  answer#<set>#<n>                          part=<bytes of a large answer>

An answer too large for its record (:mod:`chalicelib.store.answer_parts`) is written as
part items in the record's own partition *before* the record that refers to them, with
an ``expiration`` :data:`PART_GRACE_SECONDS` later than the record's, so DynamoDB's TTL
(which deletes in no particular order) never removes a part of a live record, and an
account's deletion removes parts and records alike.

Invariants:
- Every record of one account scope (:func:`chalicelib.incarnations.scoped`) lives in the
  partition :func:`partition` names, so an account's records can be found without knowing
  its keys (they are hashes) and none of another scope is ever touched with them.
- Deleting a partition is repeatable: a retried deletion finds less, or nothing.
- A part's sort key starts with ``answer#``; Powertools' keys start with the function's
  module path, so the two never collide.
"""

from __future__ import annotations

import time
from typing import Any

from pynamodb.attributes import BinaryAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from chalicelib.settings import get_settings
from chalicelib.store.answer_parts import pack, reference_of, unpack

_settings = get_settings()
TABLE = "idempotency-records"
PART_GRACE_SECONDS = 3600


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


class AnswerPartItem(Model):
    """One part of a large answer (see the module docstring)."""

    class Meta:
        table_name = _settings.table_name(TABLE)
        region = _settings.aws_region

    id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    part = BinaryAttribute(legacy_encoding=False)
    expiration = NumberAttribute()


def _part_key(set_id: str, number: int) -> str:
    return f"answer#{set_id}#{number}"


def store_answer(scope: str, answer: dict[str, Any], ttl_seconds: int) -> dict[str, Any]:
    """What the record of ``answer`` holds: the answer itself, or (its parts written) a reference."""
    packed = pack(answer)
    if packed.set_id is not None:
        expiration = int(time.time()) + ttl_seconds + PART_GRACE_SECONDS
        with AnswerPartItem.batch_write() as batch:
            for number, part in enumerate(packed.parts):
                batch.save(AnswerPartItem(partition(scope), _part_key(packed.set_id, number), part=part,
                                          expiration=expiration))
    return packed.held


def load_answer(scope: str, held: dict[str, Any]) -> dict[str, Any]:
    """The answer a record holds, its parts read when it holds a reference.

    Raises :class:`~chalicelib.store.answer_parts.TornAnswerError` when parts are missing."""
    reference = reference_of(held)
    if reference is None:
        return held
    set_id, count, digest = reference
    keys = [(partition(scope), _part_key(set_id, number)) for number in range(count)]
    found = {item.sk: item.part for item in AnswerPartItem.batch_get(keys, consistent_read=True)}
    return unpack(digest, [found.get(sk) for _, sk in keys])


def delete_records_of_scope(scope: str) -> int:
    """Remove every record of one account scope (account deletion); returns how many."""
    items = list(IdempotencyRecordItem.query(partition(scope), attributes_to_get=["id", "sk"]))
    with IdempotencyRecordItem.batch_write() as batch:
        for item in items:
            batch.delete(item)
    return len(items)
