"""Domain errors and their HTTP meaning: the one error vocabulary of the API.

Every failure a caller can cause or observe is an :class:`ApiError` subclass with a
stable ``code`` (part of the public contract: clients branch on it), an HTTP status and
optional ``details`` (field errors, the mail server's own response text). The HTTP
layer renders all of them in one shape::

    {"error": "human message", "code": "StableCode", "statusCode": 400, "details": {...}}

Statuses: 400 means the request contradicts the OpenAPI document (a wrong type, a missing
or unknown field, JSON that does not parse); a request the document allows but that cannot
be done as asked is 409 when the state of the target stands in the way (INBOX cannot be
renamed, the account has no SMTP settings) and 422 when its values cannot be used (a rule
the document cannot express, an id or cursor this API did not issue, a range that ends
before it starts, mail-server settings that do not log in). So "schema-valid" never earns a 400, which is what the
fuzzing gate (tests/e2e/test_api_fuzzing.py) checks.

Invariant: messages and details never contain a secret. Mail-server failures carry the
server's response text, which never echoes the password (servers answer LOGIN with a
status line, not with the arguments).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Base of every error that maps to an HTTP answer."""

    status: int = 400
    code: str = "BadRequest"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details or {}

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message, "code": self.code, "statusCode": self.status}
        if self.details:
            body["details"] = self.details
        return body


class ValidationError(ApiError):
    """A field is wrong; ``details`` names it.

    400 when the request contradicts the OpenAPI document (missing, unknown or mistyped
    fields, a value out of a documented range or pattern: the router's parse step). 422,
    the default, for the rules the document cannot carry: the models' own validators
    (an address's syntax, one field required unless another is given) and every check
    a service makes.
    """

    status = 422
    code = "ValidationError"


class CredentialsRequiredError(ApiError):
    """An update changes where or how a stored password would be sent, without the password.

    ``details`` names the missing field (``{"imap.auth.pass": "required when imap.host
    changes"}``): a stored password only ever goes to the server it was given for. 422:
    the document allows such a body, the rule spans fields it cannot relate.
    """

    status = 422
    code = "CredentialsRequired"


class InvalidJSONError(ApiError):
    status = 400
    code = "InvalidJSON"


class PayloadTooLargeError(ApiError):
    status = 413
    code = "PayloadTooLarge"


class UnauthorizedError(ApiError):
    status = 401
    code = "Unauthorized"


class ForbiddenError(ApiError):
    status = 403
    code = "Forbidden"


class NotFoundError(ApiError):
    status = 404
    code = "NotFound"


class AccountNotFoundError(NotFoundError):
    code = "AccountNotFound"


class TokenNotFoundError(NotFoundError):
    code = "TokenNotFound"


class ConflictError(ApiError):
    status = 409
    code = "Conflict"


class OAuth2AppNotFoundError(NotFoundError):
    code = "OAuth2AppNotFound"


class OAuth2AppInUseError(ConflictError):
    """Accounts still log in through this OAuth2 application; ``details.accounts`` names some."""

    code = "OAuth2AppInUse"


class UnprocessableError(ApiError):
    """Schema-valid, but its values cannot be acted on (see the module docstring)."""

    status = 422
    code = "Unprocessable"


class AccountExistsError(ConflictError):
    code = "AccountExists"


class LastAdminTokenError(ConflictError):
    """Revoking this token would leave no unbound admin token: nobody could manage tokens any more."""

    code = "LastAdminToken"


class MailServerError(ApiError):
    """A mail server could not be reached, spoken to securely, or logged in to.

    ``code`` names the cause (``HostNotFound``, ``ConnectionRefused``,
    ``ConnectionTimeout``, ``TLSError``, ``TLSUnavailable``, ``AuthenticationFailed``,
    ``NoIMAPCapability``, ``HostNotAllowed``, ``ServerResponseTooLarge``, ...); ``server_response`` is the server's
    own text when it said something in the protocol asked for (the adapters never pass
    another service's banner: host and port are often the caller's choice). 422 while
    verifying settings a request brings; the mail API answers 502 for the stored settings
    of an account.
    """

    status = 422

    def __init__(self, message: str, *, code: str, protocol: str,
                 server_response: str | None = None, status: int | None = None) -> None:
        details: dict[str, Any] = {"protocol": protocol}
        if server_response:
            details["serverResponse"] = server_response
        super().__init__(message, code=code, status=status, details=details)
        self.protocol = protocol
        self.server_response = server_response


class ServiceUnavailableError(ApiError):
    status = 503
    code = "ServiceUnavailable"


class TooManyRequestsError(ApiError):
    """Come back later: 429 with ``Retry-After`` (seconds), also given as ``details.retryAfter``."""

    status = 429
    code = "TooManyRequests"

    def __init__(self, message: str, *, retry_after: int, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details={"retryAfter": retry_after, **(details or {})})
        self.retry_after = retry_after

    def response_headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class RateLimitedError(TooManyRequestsError):
    """The caller used up its allowance of an operation for the current window."""

    code = "RateLimited"


# -- mail API errors --------------------------------------------------------------------------


class MailboxNotFoundError(NotFoundError):
    code = "MailboxNotFound"


class MessageNotFoundError(NotFoundError):
    code = "MessageNotFound"


class AttachmentNotFoundError(NotFoundError):
    code = "AttachmentNotFound"


class MailboxExistsError(ConflictError):
    code = "MailboxExists"


class InvalidIdError(UnprocessableError):
    """A message id, attachment id or cursor that we did not issue (or that was altered)."""

    code = "InvalidMessageId"


class InvalidCursorError(InvalidIdError):
    """A page cursor this deployment did not issue for this listing and query (or one altered)."""

    code = "InvalidCursor"


class MailPermissionError(ForbiddenError):
    """The mail server refuses the change: read-only mailbox, missing ACL right."""

    code = "MailboxReadOnly"


class OverQuotaError(ApiError):
    status = 507
    code = "OverQuota"


class TooManyConnectionsError(TooManyRequestsError):
    """Every IMAP connection slot of the account is busy; retry after ``retry_after`` seconds."""

    code = "TooManyConnections"


class UpstreamTimeoutError(ApiError):
    """The mail server did not finish within the request budget."""

    status = 504
    code = "UpstreamTimeout"
