"""A refused access token is refreshed and tried once more; nothing else is retried."""

from __future__ import annotations

import pytest

from chalicelib.errors import MailServerError
from chalicelib.token_refusal import login_refreshing_once


def _scripted(*answers: str):
    """A login answering ``answers`` in turn: "ok" logs in, any other word is that error code."""
    tried: list[str] = []

    def login(secret: str) -> str:
        tried.append(secret)
        answer = answers[len(tried) - 1]
        if answer != "ok":
            raise MailServerError("refused", code=answer, protocol="IMAP")
        return f"session({secret})"

    return login, tried


@pytest.mark.parametrize(("answers", "refreshable", "expected", "tried"), [
    (["ok"], True, "session(old)", ["old"]),
    (["AuthenticationFailed", "ok"], True, "session(new-for-old)", ["old", "new-for-old"]),
    (["AuthenticationFailed", "AuthenticationFailed"], True, "AuthenticationFailed", ["old", "new-for-old"]),
    (["AuthenticationFailed"], False, "AuthenticationFailed", ["old"]),
    (["ConnectionTimeout"], True, "ConnectionTimeout", ["old"]),
])
def test_only_a_refused_refreshable_login_is_tried_again_once(answers, refreshable, expected, tried):
    login, seen = _scripted(*answers)
    refreshed = (lambda refused: f"new-for-{refused}") if refreshable else None
    try:
        outcome = login_refreshing_once(login, "old", refreshed)
    except MailServerError as exc:
        outcome = exc.code
    assert outcome == expected
    assert seen == tried
