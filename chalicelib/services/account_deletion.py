"""Deleting an account: everything keyed by it goes, in an order that is safe to interrupt.

::

    DELETE /v1/account/{id}
      1. bound tokens revoked            nothing can act for the account any more, even if a
                                         later step fails
      2. record -> state "deleting"      404 for every reader, the watcher stops, no new send,
         (the tombstone)                 token or edit is accepted; a concurrent edit fails
      3. bound tokens revoked again      one created between 1 and 2 (creation checks the account)
      4. outbox entries                  queued ones cancelled, then content and entries deleted
      5. webhook delivery log            the account's items (byAccount index)
      6. webhook endpoint state          its own endpoints disabled by a 410 (settings table)
      7. checkpoints                     the watcher's per-folder state
      8. connection leases               the account's mail-API connection slots
      9. idempotency records             the stored answers of its Idempotency-Key requests
                                         (dry-runs hold the message text): its partition
     10. accountDeleted queued          the same event id on a retry (consumers drop repeats)
     11. record deleted                  with the credentials, the webhook override and its
                                         secrets; the id is free, a new registration gets a
                                         new incarnation

Invariants:
- Every step is idempotent, and the record goes last: a DELETE that fails half-way leaves
  the tombstone, and a retried DELETE runs every step again and finishes the job (it answers
  404 only once the record is gone).
- Nothing that outlives the record can act for a new account with the same id: what a step
  misses (an outbox entry queued in a race, an idempotency record written by a request that
  was already running) is keyed by the old incarnation, and the outbox consumer sends an
  entry only through the incarnation that queued it (:mod:`chalicelib.incarnations`); an
  event still queued was detected before the new registration, and the webhook consumer
  drops it (:mod:`chalicelib.webhooks.targets`); such an idempotency record expires after
  ``IMAPLESS_IDEMPOTENCY_TTL_SECONDS``.
- Idempotency records are found by their partition, the account's scope (its id and
  incarnation, read from the tombstone): their own keys are hashes.
- Per-account webhook settings (``webhooks``, ``webhookEvents``, the override's secrets)
  live on the record itself.
"""

from __future__ import annotations

from chalicelib.incarnations import scoped
from chalicelib.observability import logger
from chalicelib.services import account_events, account_records, tokens
from chalicelib.store import accounts as account_store
from chalicelib.store import checkpoints as checkpoint_store
from chalicelib.store import deliveries as delivery_store
from chalicelib.store import idempotency_records
from chalicelib.store import outbox as outbox_store
from chalicelib.store import tokens as token_store
from chalicelib.store.connection_leases import DynamoLeaseBroker
from chalicelib.webhooks import configuration


def _revoke_tokens(account_id: str) -> int:
    revoked = token_store.delete_tokens_of_account(account_id)
    tokens.forget_verified_tokens()  # -- mail API: cached reads --
    return revoked


def delete_account(account_id: str) -> None:
    """Remove the account and everything it owns; AccountNotFoundError once nothing is left."""
    revoked = _revoke_tokens(account_id)
    tombstone = account_store.mark_deleting(account_id)
    account_records.forget_account(account_id)  # -- mail API: cached reads --
    revoked += _revoke_tokens(account_id)
    removed = {
        "tokens": revoked,
        "outbox": outbox_store.delete_entries_of_account(account_id),
        "deliveries": delivery_store.delete_deliveries_of_account(account_id),
        "disabledEndpoints": configuration.forget_account_endpoints(account_id),
        "checkpoints": checkpoint_store.delete_account_checkpoints(account_id),  # -- watcher: checkpoints --
        "connectionLeases": DynamoLeaseBroker().release_all(account_id),
        "idempotencyRecords": idempotency_records.delete_records_of_scope(scoped(account_id, tombstone.incarnation)),
    }
    account_events.announce_deleted(account_id, tombstone.incarnation)
    account_store.delete_account(account_id)
    logger.info("account deleted", extra={"account": account_id, "removed": removed})
