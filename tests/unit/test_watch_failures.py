"""Classifying a failure of an account's task: one kind per failure, one syncError it would record."""

from __future__ import annotations

import pytest

from chalicelib.errors import MailServerError
from chalicelib.events.publisher import PublishError
from chalicelib.imap.limits import RESPONSE_TOO_LARGE, ResponseTooLargeError
from chalicelib.imap.watch import CommandFailedError, ConnectionLostError
from chalicelib.store.checkpoints import CheckpointConflictError
from chalicelib.sync.reset_guard import UidValidityUnstableError
from workers.watch.failures import RECOVERABLE, classify_failure

TOO_LARGE = ResponseTooLargeError("a 900000000-byte literal", 1000, "IMAPLESS_IMAP_MAX_LITERAL_BYTES")

# (name, exception, unexpected, kind, syncError code)
CASES = [
    ("the lease moved", CheckpointConflictError("lease moved"), False, "not_the_server", "ConnectionLost"),
    ("the events queue failed", PublishError("2 of 3 not accepted"), False, "not_the_server", "ConnectionLost"),
    ("an answer over a read cap", TOO_LARGE.mail_server_error("FETCH"), False, "over_read_cap", RESPONSE_TOO_LARGE),
    ("a UIDVALIDITY that keeps changing", UidValidityUnstableError("INBOX", 7), False, "persistent",
     "UidValidityUnstable"),
    ("a refused command", CommandFailedError("EXAMINE failed", server_response="NO broken"), False, "transient",
     "CommandFailed"),
    ("any other mail-server error", MailServerError("timed out", code="ConnectionTimeout", protocol="imap"), False,
     "transient", "ConnectionTimeout"),
    ("a lost connection", ConnectionLostError("server closed the connection"), False, "transient",
     "ConnectionLost"),
    ("a socket error", OSError("reset by peer"), False, "transient", "ConnectionLost"),
    ("a bug on an unusable answer", ValueError("bad literal"), True, "transient", "InternalError"),
]


@pytest.mark.parametrize(("exc", "unexpected", "kind", "code"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_classify_failure(exc, unexpected, kind, code):
    assert unexpected or isinstance(exc, RECOVERABLE)
    failure = classify_failure(exc, unexpected=unexpected)
    assert (failure.kind, failure.outcome.code, failure.outcome.state) == (kind, code, "syncError")


def test_the_server_s_words_are_kept_and_a_bug_says_nothing_of_its_own():
    refused = classify_failure(CommandFailedError("EXAMINE failed: A4 NO x", server_response="NO x"))
    assert refused.outcome.response == "NO x"
    bug = classify_failure(ValueError("secret-ish internals"), unexpected=True)
    assert "secret" not in (bug.outcome.message or "") and bug.outcome.response is None
