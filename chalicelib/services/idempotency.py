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
    the work raised before it acted        ──▶ record deleted: a retry runs again (an error answer)
    the work acted (``done``), then died   ──▶ the answer it recorded when it acted (below)

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

Work that acts outside before it ends (a send: the SMTP server takes the message, then the
Sent copy and flags follow) says so the moment it has acted, with the answer a retry should
get if it never finishes (``done(answer)``, see :func:`run_once`). That answer is written
at once as the record's COMPLETED answer, and the full answer overwrites it at the end::

    INPROGRESS ──▶ work acts (SMTP 250) ──▶ COMPLETED {compact answer} ──▶ steps ──▶ COMPLETED {answer}
                                             │
        the process dies here (a Lambda      └─▶ a retry, at any time: the compact answer, replayed
        timeout, SIGKILL)                        (200 with a warning that the steps may not have run)

Why COMPLETED at once rather than a mark on the INPROGRESS record: Powertools takes over an
INPROGRESS record whose ``in_progress_expiration`` has passed (its conditional put accepts
``status = INPROGRESS AND in_progress_expiration < now``) and runs the work again; a mark
beside it would need our own read before every Powertools run, and a race between that read
and Powertools' put. A COMPLETED record is never taken over before ``expiration`` (the
key's TTL), so the guarantee is Powertools' own condition, and a replay is its ordinary
path: no extra read on any request, and one write on a request that acts. That write is
Powertools' own ``save_success`` (the UpdateItem it makes at the end) through the
persistence layer this module already owns, not a second writer in :mod:`chalicelib.store`:
the record's attributes, JSON encoding and payload hash are Powertools' layout, and one
writer keeps them consistent. It is unconditional, like Powertools' write at the end: the
only other writer of the record would be a request that took over an expired INPROGRESS
record, which cannot happen while ours runs (a request ends within
``api_request_budget_seconds``, well under :data:`IN_PROGRESS_SECONDS`). If it fails, the
work goes on; only then does the old window stay open (a retry after the process died and
INPROGRESS expired acts again). A retry *while* the steps run gets the compact answer too
(it says what is true: the message went out), not 409. Work that raises after ``done``
answers with its ``done`` answer instead of the error (Powertools would delete the record,
and a retry would act again).

The one window left without ``done``: a store that refuses both writes after the work, then
recovers, and a retry after INPROGRESS expired. Closing it would need a write, which is
exactly what such a store refuses.

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
from typing import TYPE_CHECKING, Any, cast

from chalicelib import aws_clients
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

if TYPE_CHECKING:
    # Powertools' idempotency utility costs ~80 ms to import; it is imported by the first
    # request that carries an Idempotency-Key, not by every cold start of the API.
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from aws_lambda_powertools.utilities.idempotency.serialization.base import BaseIdempotencySerializer
    from botocore.client import BaseClient

HEADER = "idempotency-key"              # the request header (HTTP header names are case-insensitive)
REPLAYED_HEADER = "Idempotent-Replayed"  # set on an answer that was stored, not computed now
IN_PROGRESS_SECONDS = 120
REPLAY_MARKER = "_idempotentReplay"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

Answer = dict[str, Any]
# The work calls it the moment it has acted outside, with the answer a retry gets if the work
# never finishes (see the module docstring).
Done = Callable[[Answer], None]


def _mark_replay(response: Any, idempotent_data: DataRecord) -> Any:
    return {**response, REPLAY_MARKER: True} if isinstance(response, dict) else response


def _run(*, request: dict[str, Any], work: Callable[[], Answer]) -> Answer:
    # ``request`` is what Powertools hashes; ``work`` does the job once.
    return work()


class _StoredAnswer:
    """How an answer goes into its record: inline, or as parts beside it (see the docstring).

    Powertools' ``BaseIdempotencySerializer`` in all but name: Powertools only calls
    ``to_dict``/``from_dict``, and subclassing would import the utility with this module.
    """

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
    done: Answer | None = None  # what the work said it had done, before it ended

    def track(self, work: Callable[[Done], Answer], done: Done) -> Callable[[], Answer]:
        def tracked() -> Answer:
            try:
                self.answer = work(done)
            except Exception as exc:
                if self.done is None:
                    self.error = exc
                    raise
                # It acted outside: its answer is what it did, never an error a retry would redo.
                _log_failure("the work failed after it had acted; answering with what it did", exc)
                self.answer = self.done
            except BaseException as exc:
                self.error = exc
                raise
            return self.answer
        return tracked

    def recorder(self, store: DynamoDBPersistenceLayer, request: dict[str, Any]) -> Done:
        def done(answer: Answer) -> None:
            self.done = answer
            try:
                # COMPLETED now, inline (a compact answer, no parts); the full answer overwrites it.
                store.save_success(data=request, result=answer)
            except Exception as exc:  # noqa: BLE001 - the work goes on; only the crash window stays open
                _log_failure("what an Idempotency-Key request did could not be recorded", exc,
                             operation=request["operation"], inProgressSeconds=IN_PROGRESS_SECONDS)
        return done


@functools.lru_cache(maxsize=1)
def _config() -> IdempotencyConfig:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig  # see TYPE_CHECKING above

    return IdempotencyConfig(event_key_jmespath="[operation, account, key]",
                             payload_validation_jmespath="bodyHash", raise_on_no_idempotency_key=True,
                             expires_after_seconds=get_settings().idempotency_ttl_seconds, hash_function="sha256",
                             lambda_context=FixedBudget(IN_PROGRESS_SECONDS), response_hook=_mark_replay)


def _client() -> BaseClient:
    """One DynamoDB client for every scope's persistence layer, created on first use."""
    return aws_clients.client("dynamodb")


def _persistence(scope: str) -> DynamoDBPersistenceLayer:
    """A persistence layer for ``scope``'s partition (it holds one partition key, so each
    request gets its own: a few attribute assignments; the client is shared)."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer  # see TYPE_CHECKING above

    return DynamoDBPersistenceLayer(table_name=get_settings().table_name(TABLE), static_pk_value=partition(scope),
                                    sort_key_attr="sk", boto3_client=_client())


def _idempotent_run(scope: str, store: DynamoDBPersistenceLayer) -> Callable[..., Answer]:
    """The Powertools-wrapped runner whose records live in ``scope``'s partition."""
    from aws_lambda_powertools.utilities.idempotency import idempotent_function  # see TYPE_CHECKING above

    return idempotent_function(_run, data_keyword_argument="request", persistence_store=store, config=_config(),
                               output_serializer=cast("BaseIdempotencySerializer", _StoredAnswer(scope)))


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


def _nothing_to_record(answer: Answer) -> None:
    """Without a key a retry is a new request: there is nothing to record."""


def reset() -> None:
    _config.cache_clear()
    aws_clients.reset()


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


def run_once(operation: str, account: str, key: str | None, body: Any, work: Callable[[Done], Answer], *,
             compact: Callable[[Answer], Answer | None] = _unchanged) -> tuple[Answer, bool]:
    """``work(done)``'s answer, computed once per key; returns (answer, replayed).

    ``work`` calls ``done(answer)`` the moment it has acted outside (work that only reads
    never calls it): a small answer saying what it did, recorded as the key's answer at
    once so that a retry never acts again, even after this process died (see the module
    docstring). ``compact(answer)`` is what to keep when the answer itself cannot be
    stored: a small answer that still tells a retry what was done, or None when the work
    changed nothing outside (a retry may run it again). Both are stored in the record
    itself, never in parts.
    """
    if key is None:
        return work(_nothing_to_record), False
    if not _KEY.match(key):
        raise ValidationError("Idempotency-Key must be 1-255 printable ASCII characters",
                              details={"headers.Idempotency-Key": "invalid"})
    scope = _account_scope(account)
    request = {"operation": operation, "account": scope, "key": key, "bodyHash": body_hash(body)}
    from aws_lambda_powertools.utilities.idempotency.exceptions import (  # see TYPE_CHECKING above
        IdempotencyAlreadyInProgressError,
        IdempotencyPersistenceLayerError,
        IdempotencyValidationError,
    )

    store, outcome = _persistence(scope), _Outcome()
    try:
        answer = _idempotent_run(scope, store)(request=request,
                                               work=outcome.track(work, outcome.recorder(store, request)))
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
