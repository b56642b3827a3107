"""Shared building blocks of the request/response models.

Every model is built with ``defer_build``: pydantic compiles a model's validator and
serializer when the model is first used, not when its class is defined. The API defines
~150 models and a request uses a handful, so compiling all of them at import was most of
the cost of importing the API (a cold start); the OpenAPI document builds them all when
it is served.
"""

from __future__ import annotations

import functools
import re
from datetime import date, datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PrivateAttr,
    Strict,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from chalicelib.schemas import emailengine_fields

ACCOUNT_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


@functools.cache
def _email_validator() -> Any:
    # Imported on the first address to check (its import, with idna and dnspython, costs
    # ~45 ms of every cold start otherwise).
    import email_validator

    # RFC 6761 tells applications not to treat example.com/.test/.invalid specially, and users
    # test against exactly those domains; email-validator rejects them unless this module-level
    # list (documented as changeable by library users) is emptied.
    email_validator.SPECIAL_USE_DOMAIN_NAMES = []
    return email_validator


def check_address_syntax(value: str) -> str:
    """Validate an RFC 5321/5322 address by syntax only (no DNS, no TLD list); return it normalized."""
    email_validator = _email_validator()
    try:
        result = email_validator.validate_email(value, check_deliverability=False, globally_deliverable=False)
    except email_validator.EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None
    return result.normalized


EmailAddress = Annotated[
    str,
    Field(max_length=320, json_schema_extra={"format": "email"}, examples=["alice@example.com"]),
    AfterValidator(check_address_syntax),
]

_ISO_DATE_START = re.compile(r"\d{4}-\d{2}-\d{2}")


def require_iso_text(value: Any) -> Any:
    """Dates arrive as ISO 8601 text, as the document says (``format: date``/``date-time``).

    Pydantic's lax mode would also take a number or a numeric string as a Unix time, which
    the document does not allow; a request that contradicts it is a 400, never a surprise.
    """
    if isinstance(value, (date, datetime)):
        return value
    if not isinstance(value, str) or not _ISO_DATE_START.match(value):
        raise ValueError("expected an ISO 8601 date or date-time, e.g. 2026-01-31T12:00:00Z")
    return value


# Strict(False): request bodies are validated strictly (JSON types as documented), but a
# date only ever arrives as text, which require_iso_text has vetted.
IsoDateTime = Annotated[datetime, Strict(False), BeforeValidator(require_iso_text)]
IsoDay = Annotated[Annotated[date, Strict(False)] | Annotated[datetime, Strict(False)],
                   BeforeValidator(require_iso_text)]

AccountId = Annotated[str, Field(pattern=ACCOUNT_ID_PATTERN, examples=["alice"],
                                 description="Your id for the account: 1-64 of A-Z a-z 0-9 . _ -")]


class StrictModel(BaseModel):
    """Input model: unknown fields are errors, so typos do not silently do nothing.

    Except EmailEngine's fields named in ``emailengine_ignored`` (see
    :mod:`chalicelib.schemas.emailengine_fields`): set aside before validation, unread,
    remembered for the response's ``warnings``, and documented as ignored.
    """

    # strict: a body's JSON types are the documented ones (no "0" for false, no "5" for 5);
    # query parameters, which are all text, are read with strict=False (routing.parse_query).
    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=False, strict=True,
                              defer_build=True)

    emailengine_ignored: ClassVar[tuple[str, ...]] = ()
    _ignored_fields: tuple[str, ...] = PrivateAttr(default=())

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        emailengine_fields.check_no_overlap(cls, cls.emailengine_ignored)

    @model_validator(mode="wrap")
    @classmethod
    def _set_aside_ignored(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        data, present = emailengine_fields.set_aside(cls.emailengine_ignored, data)
        model = handler(data)
        if present:
            model._ignored_fields = present
        return model

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        if cls.emailengine_ignored:
            emailengine_fields.document_ignored(cls.emailengine_ignored, handler.resolve_ref_schema(schema))
        return schema


# Paging bounds, the same on every list (documented in the OpenAPI document and the README).
# A page number past MAX_PAGE is refused rather than computed: page * pageSize must stay a
# small number for every store and server the offset reaches (IMAP sequence numbers are
# 32-bit, RFC 3501 2.3.1.2).
MAX_PAGE = 100_000
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 20
MAX_CURSOR_LENGTH = 2048

PageNumber = Annotated[int, Field(ge=0, le=MAX_PAGE, description=f"0-based page number, at most {MAX_PAGE}")]
PageSize = Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE, description=f"Items per page, 1-{MAX_PAGE_SIZE}")]
# An empty cursor is the first page, as an absent one (clients often send "cursor=").
Cursor = Annotated[str, Field(max_length=MAX_CURSOR_LENGTH,
                              description="The next-page cursor of the previous answer, unchanged")]


class PageQuery(StrictModel):
    """Query parameters of every numbered list: ``page`` and ``pageSize`` within the bounds above."""

    page: PageNumber = 0
    pageSize: PageSize = DEFAULT_PAGE_SIZE


class OutputModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, defer_build=True)


class FieldWarning(OutputModel):
    """A request field that was accepted and not acted on (EmailEngine's, for a feature this API lacks)."""

    field: str = Field(description="The field's dotted path in the request, e.g. imap.resyncDelay")
    reason: str = Field(description=f"Why it had no effect: {emailengine_fields.IGNORED_REASON!r}")


class ErrorBody(OutputModel):
    error: str = Field(description="Human-readable message")
    code: str = Field(description="Stable machine-readable code")
    statusCode: int
    details: dict | None = Field(default=None, description="Field errors or the mail server's own answer")


class DeletedResponse(OutputModel):
    deleted: bool
