"""Account incarnations: which life of an account id a stored item or an event belongs to.

An account id can be deleted and registered again. Everything that outlives a request and
is keyed by the account (outbox entries, idempotency records, event ids, which are also the
SQS deduplication ids and the ``webhook-id`` receivers dedupe on) is keyed by the pair
(account id, incarnation) instead, so the second life of an id never meets the first one's
leftovers: a scheduled message of the old account is not sent through the new one, and the
new account's first events do not collide with the old ones' deterministic ids.

Invariants:
- An incarnation is drawn once, when the account is created, and never changes.
- Records written before incarnations existed have none: they read as :data:`LEGACY`, and
  :func:`scoped` of a legacy account is the bare account id, so their event ids and
  idempotency keys are exactly what they were (no migration, no re-sent events).
- Account ids never contain ``~`` (``ACCOUNT_ID_PATTERN``), so a scoped key cannot be
  mistaken for another account's bare id.
"""

from __future__ import annotations

import secrets

LEGACY = ""
_SEPARATOR = "~"


def new_incarnation() -> str:
    """A fresh incarnation: 8 hex digits (a collision only matters for the same account id)."""
    return secrets.token_hex(4)


def scoped(account: str, incarnation: str | None) -> str:
    """The key of one incarnation of ``account``: the bare id for a legacy record."""
    return f"{account}{_SEPARATOR}{incarnation}" if incarnation else account
