"""``Idempotency-Key``: a retried request returns the first result instead of acting twice.

Built on Powertools' idempotency utility with its DynamoDB persistence layer (table
``<prefix>idempotency-records``, TTL on ``expiration``, layout in
:mod:`chalicelib.store.idempotency_records`). A record's partition is its account scope (the
account and its incarnation) and its sort key a hash of (operation, scope, the client's key),
so keys are scoped per account and per endpoint, deleting an account deletes its records, and
an account id that is deleted and registered again never replays its first life's answers
(legacy accounts without an incarnation keep their keys, see :mod:`chalicelib.incarnations`).
The request body is hashed separately and checked on every reuse::

    first request   ──▶ INPROGRESS record ──▶ work ──▶ COMPLETED record with the answer
    same key, same body, first done        ──▶ the stored answer (header Idempotent-Replayed: true)
    same key, same body, first still busy  ──▶ 409 IdempotencyKeyInUse (retry later)
    same key, other body                   ──▶ 422 IdempotencyKeyReused
    the work raised (an error answer)      ──▶ record deleted: a retry runs again

An answer larger than a record may hold (a dry run with a large attachment) is stored in
compressed parts beside its record (:mod:`chalicelib.store.answer_parts`), so a replay
returns it byte for byte: recomputing a dry run would give another Message-ID, Date and
queueId, and dropping the message would not be the same answer. The parts live in the
record's partition and expire after it, so account deletion and TTL remove them with their
record. (The downloads bucket was the other candidate: its objects expire after a day
while a key lives ``IMAPLESS_IDEMPOTENCY_TTL_SECONDS``, and account deletion would need a
second cleanup there.)

Never "nothing was done" after something was done. Once the work has returned, its
answer is what the client gets (2xx), whatever happens to the record; a failure to store
it is logged (operation, account and the error's class, never the key or the answer) and
the record is left so that a retry does not act again::

    storing the answer (parts, then COMPLETED) ...      what a retry with the same key sees
    ───────────────────────────────────────────────     ───────────────────────────────────────
    succeeded                                           the stored answer, replayed
    failed; work changed nothing outside (a dry run,    INPROGRESS deleted: the work runs again
      ``compact`` returns None)                         (a new dry run; nothing is sent either way)
    failed; the compact answer stored in the record     that compact answer, replayed (for a send
      (inline, no parts: a small write)                 the whole answer: it holds no message)
    failed, and so did the compact write (DynamoDB      INPROGRESS kept: 409 IdempotencyKeyInUse
      unreachable)                                      until it expires (IN_PROGRESS_SECONDS);
                                                        only after that could a retry act again
    the work raised, and deleting INPROGRESS failed     the work's own error answer; a retry gets
                                                        409 until INPROGRESS expires, then runs
    storing INPROGRESS failed (before any work)         503 IdempotencyStoreUnavailable: nothing
                                                        was done (true: the work never started)
    a replay whose parts cannot be read                 503 IdempotencyStoreUnavailable ("retry":
                                                        the record stays COMPLETED)

The one window left: a store that refuses both writes after the work, then recovers,
and a retry after INPROGRESS expired. Closing it would need a write, which is exactly what
such a store refuses.

An INPROGRESS record left by a crashed request stops blocking its key after
:data:`IN_PROGRESS_SECONDS` (longer than any request may run), so a client retrying
after a crash is not locked out for the whole TTL. Keys are 1-255 printable ASCII
characters; the body hash is SHA-256.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.idempotency.serialization.base import BaseIdempotencySerializer
from botocore.client import BaseClient

from chalicelib.errors import (
    AccountNotFoundError,
    ApiError,
    ConflictError,
    ServiceUnavailableError,
    ValidationError,
)
from chalicelib.incarnations import scoped
from chalicelib.lambda_budget import FixedBudget
from chalicelib.observability import logger
from chalicelib.services import accounts
from chalicelib.settings import get_settings
from chalicelib.store.idempotency_records import TABLE, load_answer, partition, store_answer

HEADER = "idempotency-key"              # the request header (HTTP header names are case-insensitive)
REPLAYED_HEADER = "Idempotent-Replayed"  # set on an answer that was stored, not computed now
IN_PROGRESS_SECONDS = 120
REPLAY_MARKER = "_idempotentReplay"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

Answer = dict[str, Any]


def _mark_replay(response: Any, idempotent_data: DataRecord) -> Any:
    return {**response, REPLAY_MARKER: True} if isinstance(response, dict) else response


def _run(*, request: dict[str, Any], work: Callable[[], Answer]) -> Answer:
    # ``request`` is what Powertools hashes; ``work`` does the job once.
    return work()


class _StoredAnswer(BaseIdempotencySerializer):
    """How an answer goes into its record: inline, or as parts beside it (see the docstring)."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    def to_dict(self, data: Answer) -> dict:
        return store_answer(self.scope, data, get_settings().idempotency_ttl_seconds)

    def from_dict(self, data: dict) -> Answer:
        try:
            return load_answer(self.scope, data)
        except Exception as exc:  # noqa: BLE001 - throttled or torn: the record stays COMPLETED, a retry reads it
            _log_failure("the stored answer could not be read", exc)
            raise ServiceUnavailableError("the answer stored for this Idempotency-Key could not be read; retry",
                                          code="IdempotencyStoreUnavailable") from None


@dataclass
class _Outcome:
    """What the work did, seen from outside Powertools (its errors do not say which step failed)."""

    answer: Answer | None = None
    error: BaseException | None = None

    def track(self, work: Callable[[], Answer]) -> Callable[[], Answer]:
        def tracked() -> Answer:
            try:
                self.answer = work()
            except BaseException as exc:
                self.error = exc
                raise
            return self.answer
        return tracked


@functools.lru_cache(maxsize=1)
def _config() -> IdempotencyConfig:
    return IdempotencyConfig(event_key_jmespath="[operation, account, key]",
                             payload_validation_jmespath="bodyHash", raise_on_no_idempotency_key=True,
                             expires_after_seconds=get_settings().idempotency_ttl_seconds, hash_function="sha256",
                             lambda_context=FixedBudget(IN_PROGRESS_SECONDS), response_hook=_mark_replay)


@functools.lru_cache(maxsize=1)
def _client() -> BaseClient:
    """One DynamoDB client for every scope's persistence layer, created on first use."""
    return boto3.client("dynamodb", region_name=get_settings().aws_region)


def _persistence(scope: str) -> DynamoDBPersistenceLayer:
    """A persistence layer for ``scope``'s partition (it holds one partition key, so each
    request gets its own: a few attribute assignments; the client is shared)."""
    return DynamoDBPersistenceLayer(table_name=get_settings().table_name(TABLE), static_pk_value=partition(scope),
                                    sort_key_attr="sk", boto3_client=_client())


def _idempotent_run(scope: str, store: DynamoDBPersistenceLayer) -> Callable[..., Answer]:
    """The Powertools-wrapped runner whose records live in ``scope``'s partition."""
    return idempotent_function(_run, data_keyword_argument="request", persistence_store=store, config=_config(),
                               output_serializer=_StoredAnswer(scope))


def _log_failure(message: str, exc: BaseException, **extra: Any) -> None:
    # The error's class and AWS code only: neither the key (the client's) nor the answer.
    cause = exc.__cause__ or exc
    response = getattr(cause, "response", None)  # botocore's ClientError carries the AWS error code
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    logger.error(message, extra={"error": type(cause).__name__, "awsCode": code, **extra})


def _keep_after_failed_save(store: DynamoDBPersistenceLayer, request: dict[str, Any], answer: Answer,
                            compact: Callable[[Answer], Answer | None], failure: Exception) -> None:
    """Leave the record so that a retry does not act again (see the table in the docstring)."""
    where = {"operation": request["operation"], "scope": request["account"]}
    _log_failure("the answer of an Idempotency-Key request could not be stored", failure, **where)
    kept = compact(answer)
    try:
        if kept is None:
            store.delete_record(data=request, exception=failure)
            logger.info("Idempotency-Key released: its work changed nothing and may run again", extra=where)
        else:
            store.save_success(data=request, result=kept)  # inline: a small write after a failed one
            logger.info("Idempotency-Key completed with its compact answer", extra=where)
    except Exception as exc:  # noqa: BLE001 - the answer is already given; this was the last resort
        _log_failure("the Idempotency-Key record stays in progress until it expires", exc,
                     inProgressSeconds=IN_PROGRESS_SECONDS, **where)


def _unchanged(answer: Answer) -> Answer | None:
    return answer


def reset() -> None:
    _config.cache_clear()
    _client.cache_clear()


def body_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _account_scope(account: str) -> str:
    """``account`` in its current incarnation; as it is when no account holds the id (a replay
    of a deleted account's log, or of every account's): no later account can share that scope.

    A consistent read, not the few-seconds cache: right after an id is registered again, a
    stale incarnation would answer with the deleted account's result."""
    if not account:
        return account
    try:
        return scoped(account, accounts.get_account(account).incarnation)
    except AccountNotFoundError:
        return account


def run_once(operation: str, account: str, key: str | None, body: Any, work: Callable[[], Answer], *,
             compact: Callable[[Answer], Answer | None] = _unchanged) -> tuple[Answer, bool]:
    """``work()``'s answer, computed once per key; returns (answer, replayed).

    ``compact(answer)`` is what to keep when the answer itself cannot be stored: a small
    answer that still tells a retry what was done, or None when the work changed nothing
    outside (a retry may run it again). It is stored in the record itself, never in parts.
    """
    if key is None:
        return work(), False
    if not _KEY.match(key):
        raise ValidationError("Idempotency-Key must be 1-255 printable ASCII characters",
                              details={"headers.Idempotency-Key": "invalid"})
    scope = _account_scope(account)
    request = {"operation": operation, "account": scope, "key": key, "bodyHash": body_hash(body)}
    store, outcome = _persistence(scope), _Outcome()
    try:
        answer = _idempotent_run(scope, store)(request=request, work=outcome.track(work))
    except IdempotencyAlreadyInProgressError:
        raise ConflictError("a request with this Idempotency-Key is still being processed; retry shortly",
                            code="IdempotencyKeyInUse") from None
    except IdempotencyValidationError:
        raise ApiError("this Idempotency-Key was used with a different request body", code="IdempotencyKeyReused",
                       status=422) from None
    except IdempotencyPersistenceLayerError as exc:
        if outcome.error is not None:
            # The work's own error answer; only removing its INPROGRESS record failed.
            _log_failure("the record of a failed Idempotency-Key request could not be removed", exc,
                         operation=operation, inProgressSeconds=IN_PROGRESS_SECONDS)
            raise outcome.error from None
        if outcome.answer is None:
            raise ServiceUnavailableError("the idempotency store is unavailable; nothing was done",
                                          code="IdempotencyStoreUnavailable") from None
        _keep_after_failed_save(store, request, outcome.answer, compact, exc)
        return outcome.answer, False
    replayed = bool(answer.pop(REPLAY_MARKER, False))
    return answer, replayed
