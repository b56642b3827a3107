"""What a failure while watching an account means: classified once, here, for the plan.

:func:`classify_failure` turns an exception from an account's task into a :class:`Failure`: its
:data:`~chalicelib.sync.watch_plan.FailureKind` (what :meth:`~chalicelib.sync.watch_plan.Health.failed`
decides from) and the account's ``syncError`` it would record (code, message, the server's words).
This is the one place that names particular errors; the executor and the plan only see the kind.

=================================================  ===============
failure                                            kind
=================================================  ===============
checkpoint conflict (the lease moved), events      not_the_server
queue failed
an answer over a read cap (imap/limits.py)         over_read_cap
a UIDVALIDITY that keeps changing (reset_guard)    persistent
anything else (connection lost, command refused,   transient
unexpected answer)
=================================================  ===============
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.errors import MailServerError
from chalicelib.events.publisher import PublishError
from chalicelib.imap.limits import RESPONSE_TOO_LARGE
from chalicelib.imap.watch import CommandFailedError, ConnectionLostError
from chalicelib.store.checkpoints import CheckpointConflictError
from chalicelib.sync.account_state import LoginOutcome
from chalicelib.sync.reset_guard import UIDVALIDITY_UNSTABLE
from chalicelib.sync.watch_plan import FailureKind

# Failures the watcher expects from a server or its own storage; anything else is a bug,
# logged with its traceback (and still retried: one account's bug must not stop the others).
RECOVERABLE = (ConnectionLostError, CommandFailedError, MailServerError, PublishError, CheckpointConflictError,
               OSError)

# Codes that will be the same on the next try, whatever the backoff:
PERSISTENT_CODES: dict[str, FailureKind] = {
    # An answer over a read cap will be over it again.
    RESPONSE_TOO_LARGE: "over_read_cap",
    # A UIDVALIDITY that keeps changing was already seen changing several times: it will again.
    UIDVALIDITY_UNSTABLE: "persistent",
}


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    outcome: LoginOutcome  # the syncError to record, if the plan says so


def classify_failure(exc: BaseException, *, unexpected: bool = False) -> Failure:
    """What ``exc``, raised by an account's task, says (``unexpected``: not one of :data:`RECOVERABLE`)."""
    return Failure(kind=_kind(exc, unexpected=unexpected), outcome=sync_failure(exc, unexpected=unexpected))


def _kind(exc: BaseException, *, unexpected: bool) -> FailureKind:
    if unexpected:
        return "transient"
    if isinstance(exc, (CheckpointConflictError, PublishError)):
        return "not_the_server"
    if isinstance(exc, MailServerError):
        return PERSISTENT_CODES.get(exc.code, "transient")
    return "transient"


def sync_failure(exc: BaseException, *, unexpected: bool = False) -> LoginOutcome:
    """What a failure after login says, as the account's syncError (code, message, the server's words)."""
    if unexpected:
        return LoginOutcome(ok=False, stage="sync", code="InternalError",
                            message="the watcher could not process the server's answers")
    if isinstance(exc, CommandFailedError):
        return LoginOutcome(ok=False, stage="sync", code="CommandFailed", response=exc.server_response,
                            message=str(exc))
    if isinstance(exc, MailServerError):
        return LoginOutcome(ok=False, stage="sync", code=exc.code, response=exc.server_response, message=exc.message)
    return LoginOutcome(ok=False, stage="sync", code="ConnectionLost", message=str(exc)[:200])
