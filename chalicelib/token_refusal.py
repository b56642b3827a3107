"""The one rule for a refused OAuth2 access token at login, shared by every IMAP and SMTP path.

A token we refreshed can be refused before its recorded expiry: the user revoked and granted
access again, or our clock runs ahead of the provider's. The expiry then says nothing, so a
refusal (``AuthenticationFailed``) refreshes the token at once and logs in once more. Only
once: a second refusal is the answer (a revoked grant, a wrong user), and retrying further
would only spend the provider's token quota.

Invariants: a login whose credentials cannot be refreshed (a password, a token the client
manages) is never retried; any other failure (a timeout, a refused connection) is never
retried here, whatever the credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from chalicelib.errors import MailServerError

Credentials = TypeVar("Credentials")
Session = TypeVar("Session")


def login_refreshing_once(login: Callable[[Credentials], Session], credentials: Credentials,
                          refreshed: Callable[[Credentials], Credentials] | None) -> Session:
    """``login(credentials)``; after an ``AuthenticationFailed`` and when ``refreshed`` is given,
    ``login(refreshed(credentials))`` once (``refreshed`` gets the refused credentials)."""
    try:
        return login(credentials)
    except MailServerError as exc:
        if exc.code != "AuthenticationFailed" or refreshed is None:
            raise
    return login(refreshed(credentials))
