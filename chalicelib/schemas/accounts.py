"""Account request/response shapes (field names compatible with EmailEngine's)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from chalicelib.schemas import emailengine_fields as ee
from chalicelib.schemas.common import AccountId, EmailAddress, IsoDateTime, OutputModel, PageQuery, StrictModel
from chalicelib.schemas.webhooks import WebhookEventName, WebhookUrl

MASKED_PASSWORD = "******"  # noqa: S105 - the mask shown instead of a password or an access token
AccountState = Literal["new", "connecting", "connected", "authenticationError", "connectError", "syncError",
                       "disconnected", "disabled"]
DISABLED_DESCRIPTION = ("IMAP only: true stops watching the account (no connection held, no events; state "
                        "`disabled`); the mail API still reads and sends on request. false resumes it.")


class TlsSettings(StrictModel):
    rejectUnauthorized: bool = Field(True, description="Verify the server certificate (default true)")
    minVersion: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    allowPlaintextAuth: bool = Field(
        False, description="Send the password unencrypted when the server offers no STARTTLS (default false)")


def check_credential_text(value: str | SecretStr | None) -> str | SecretStr | None:
    """No NUL, CR or LF: IMAP's LOGIN carries credentials as quoted strings, which cannot hold them."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if text is not None and any(character in text for character in "\x00\r\n"):
        raise ValueError("must not contain NUL, CR or LF")
    return value


CredentialUser = Annotated[str, Field(min_length=1, max_length=320), AfterValidator(check_credential_text)]
PASSWORD_MAX_CHARS = 1024
CredentialPassword = Annotated[SecretStr, Field(min_length=1, max_length=PASSWORD_MAX_CHARS),
                               AfterValidator(check_credential_text)]


# Microsoft's access tokens are JWTs of 1.5-3 KB and can grow with group claims; Dovecot drops
# an IMAP login line past ~10 KB.
ACCESS_TOKEN_MAX_CHARS = 8192
BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")


def check_access_token(value: SecretStr | None) -> SecretStr | None:
    """RFC 6750's b64token: the only characters a bearer token has, and none that could end or
    split the SASL login string it travels in (``\x01`` separates XOAUTH2's fields)."""
    if value is not None and not BEARER_TOKEN.fullmatch(value.get_secret_value()):
        # The document's own pattern (a 400, like any pattern), said in words.
        raise PydanticCustomError("string_pattern_mismatch",
                                  "must be an OAuth2 bearer token (letters, digits and -._~+/ then optional =)")
    return value


ACCESS_TOKEN_SCHEMA = {"type": "string", "format": "password", "writeOnly": True, "minLength": 1,
                       "maxLength": ACCESS_TOKEN_MAX_CHARS, "pattern": f"^{BEARER_TOKEN.pattern}$"}
CredentialAccessToken = Annotated[SecretStr, Field(min_length=1, max_length=ACCESS_TOKEN_MAX_CHARS),
                                  AfterValidator(check_access_token), WithJsonSchema(ACCESS_TOKEN_SCHEMA)]
BEARER_LOGIN_HELP = (
    "An OAuth2 access token to log in with (XOAUTH2) instead of a password. The caller manages it: it is not "
    "refreshed, and when the server rejects it the account goes to `authenticationError` until a PUT brings a new one.")


def _check_one_secret(password: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
    """``pass`` and ``accessToken`` exclude each other: ``pass``'s own validator (declared after
    ``accessToken``), so the refusal names ``<protocol>.auth.pass`` and is the 400 of a request
    that contradicts the document (its ``oneOf``/``not``), not a 422 of a rule the document lacks."""
    if password is not None and info.data.get("accessToken") is not None:
        raise PydanticCustomError("one_secret", "give either pass or accessToken, not both")
    return password


class _Absent:
    """Stands in for a ``pass`` that neither it nor ``accessToken`` replaces (see ServerAuth)."""


_ABSENT = _Absent()


def _refuse_absent(value: object) -> object:
    if value is _ABSENT:
        raise PydanticCustomError("missing", "Field required (or accessToken instead)")
    if value is None:  # optional only in that the other may replace it: never null
        raise PydanticCustomError("string_type", "Input should be a valid string")
    return value


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # the Python default None is "not given", which the document says by omission


# The document's view of a secret that may be left out but is never null.
PASSWORD_SCHEMA = {"type": "string", "format": "password", "writeOnly": True, "minLength": 1,
                   "maxLength": PASSWORD_MAX_CHARS}


def _check_token_user(user: str | None, token: SecretStr | None) -> None:
    if token is not None and user is not None and "\x01" in user:
        raise ValueError("user must not contain \\x01 with an access token")


class ServerAuth(StrictModel):
    """How to log in: ``user`` with ``pass``, or with ``accessToken`` (exactly one of them)."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["pass"]}, {"required": ["accessToken"]}]})

    user: CredentialUser
    accessToken: Annotated[CredentialAccessToken | None, BeforeValidator(_refuse_absent),
                           WithJsonSchema(ACCESS_TOKEN_SCHEMA)] = Field(
        None, description=BEARER_LOGIN_HELP, json_schema_extra=_no_default)
    password: Annotated[CredentialPassword | None, BeforeValidator(_refuse_absent),
                        WithJsonSchema(PASSWORD_SCHEMA)] = Field(None, alias="pass", json_schema_extra=_no_default)

    @model_validator(mode="before")
    @classmethod
    def _needs_a_secret(cls, data: Any) -> Any:
        # A body with neither is missing ``pass``, named as such (as before access tokens existed).
        if isinstance(data, dict) and not {"pass", "password", "accessToken"} & data.keys():
            return {**data, "pass": _ABSENT}
        return data

    @field_validator("password")
    @classmethod
    def _one_secret(cls, password: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        return _check_one_secret(password, info)

    @model_validator(mode="after")
    def _token_user(self) -> ServerAuth:
        _check_token_user(self.user, self.accessToken)
        return self


class ServerSettings(StrictModel):
    emailengine_ignored: ClassVar[tuple[str, ...]] = ee.SERVER_SETTINGS

    host: str = Field(min_length=1, max_length=253, examples=["imap.example.com"])
    port: int = Field(ge=1, le=65535, examples=[993])
    secure: bool = Field(False, description="Implicit TLS; false upgrades with STARTTLS when offered")
    auth: ServerAuth
    tls: TlsSettings = Field(default_factory=TlsSettings)


class ImapSettings(ServerSettings):
    emailengine_ignored: ClassVar[tuple[str, ...]] = ee.IMAP_SETTINGS

    disabled: bool = Field(False, description=DISABLED_DESCRIPTION)


class ServerAuthUpdate(StrictModel):
    # Not both as strings (null is "unchanged", so both null is no contradiction).
    model_config = ConfigDict(json_schema_extra={"not": {
        "required": ["pass", "accessToken"],
        "properties": {"pass": {"type": "string"}, "accessToken": {"type": "string"}}}})

    user: CredentialUser | None = None
    accessToken: CredentialAccessToken | None = Field(None, description=BEARER_LOGIN_HELP)
    password: CredentialPassword | None = Field(None, alias="pass")

    @field_validator("password")
    @classmethod
    def _at_most_one_secret(cls, password: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        return _check_one_secret(password, info)

    @model_validator(mode="after")
    def _token_user(self) -> ServerAuthUpdate:
        _check_token_user(self.user, self.accessToken)
        return self


class ServerSettingsUpdate(StrictModel):
    emailengine_ignored: ClassVar[tuple[str, ...]] = ee.SERVER_SETTINGS_UPDATE

    host: str | None = Field(None, min_length=1, max_length=253)
    port: int | None = Field(None, ge=1, le=65535)
    secure: bool | None = None
    auth: ServerAuthUpdate | None = None
    tls: TlsSettings | None = None


class ImapSettingsUpdate(ServerSettingsUpdate):
    emailengine_ignored: ClassVar[tuple[str, ...]] = ee.IMAP_SETTINGS_UPDATE

    disabled: bool | None = Field(None, description=DISABLED_DESCRIPTION)


REFRESH_TOKEN_MAX_CHARS = 4096
RefreshToken = Annotated[SecretStr, Field(min_length=1, max_length=REFRESH_TOKEN_MAX_CHARS,
                                          json_schema_extra={"format": "password", "writeOnly": True}),
                         AfterValidator(check_credential_text)]
APP_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
OAUTH2_LOGIN_HELP = ("Log in with OAuth2 tokens this service refreshes through an OAuth2 application "
                     "(`POST /v1/oauth2`): the IMAP and SMTP servers are the application's provider's.")


class OAuth2User(StrictModel):
    user: CredentialUser


class OAuth2UserUpdate(StrictModel):
    user: CredentialUser | None = None


class OAuth2Login(StrictModel):
    emailengine_ignored: ClassVar[tuple[str, ...]] = ee.OAUTH2_LOGIN

    provider: str = Field(pattern=APP_ID_PATTERN, description="The id of the OAuth2 application")
    auth: OAuth2User
    refreshToken: RefreshToken = Field(description="Sealed at rest, never shown")
    accessToken: CredentialAccessToken | None = Field(None, description="A current access token, if you have one")
    expires: IsoDateTime | None = Field(None, description="When accessToken expires")


class OAuth2LoginUpdate(StrictModel):
    """A new ``refreshToken`` re-authorizes the account (after a revocation, a new consent)."""

    emailengine_ignored: ClassVar[tuple[str, ...]] = ee.OAUTH2_LOGIN_UPDATE

    provider: str | None = Field(None, pattern=APP_ID_PATTERN)
    auth: OAuth2UserUpdate | None = None
    refreshToken: RefreshToken | None = None
    accessToken: CredentialAccessToken | None = None
    expires: IsoDateTime | None = None


# EmailEngine reads an empty string as "not given" in several fields; its own schema branch
# (a format such as `email` would otherwise call "" invalid).
EMPTY_TEXT_SCHEMA: dict[str, Any] = {"type": "string", "const": ""}

# A login name that is an address can stand in for a missing ``email`` (EmailEngine's
# getting-started request has none). The document says so with this same pattern, so a
# request the document accepts is never refused as "email missing". Only "one @ between two
# non-empty parts": \s and $ mean different things in ECMA-262 (the document's dialect) and
# in Python's re, and [^@] means the same in both.
ADDRESS_LIKE_PATTERN = r"^[^@]+@[^@]+$"
_ADDRESS_LIKE = re.compile(ADDRESS_LIKE_PATTERN)
EMAIL_SOURCES = ("imap", "smtp", "oauth2")  # the first whose auth.user is an address gives it
EMAIL_HELP = ("The account's address. When absent (or empty), the first of imap.auth.user, smtp.auth.user, "
              "oauth2.auth.user that is an address")


class _NoEmail:
    """Stands in for an ``email`` that is absent and that no login name can replace."""


_NO_EMAIL = _NoEmail()


def _login_address(data: dict[str, Any], part: str) -> str | None:
    settings = data.get(part)
    auth = settings.get("auth") if isinstance(settings, dict) else None
    user = auth.get("user") if isinstance(auth, dict) else None
    return user if isinstance(user, str) and _ADDRESS_LIKE.match(user) else None


def _refuse_no_email(value: object) -> object:
    if value is _NO_EMAIL:
        raise PydanticCustomError("missing", "Field required (no imap, smtp or oauth2 auth.user is an address "
                                             "to take it from)")
    return value


def _email_required_unless_a_login_is_an_address(schema: dict[str, Any]) -> None:
    def login_is_address(part: str) -> dict[str, Any]:
        user = {"type": "string", "pattern": ADDRESS_LIKE_PATTERN}
        auth = {"type": "object", "required": ["user"], "properties": {"user": user}}
        return {"required": [part], "properties": {part: {
            "type": "object", "required": ["auth"], "properties": {"auth": auth}}}}

    email = schema["properties"]["email"]
    email.pop("default", None)  # None is "absent", never a value
    # "" is absent too (EmailEngine's Joi .empty('')): a value the document must allow besides an address.
    schema["properties"]["email"] = {"anyOf": [{k: v for k, v in email.items() if k not in ("description", "title")},
                                               EMPTY_TEXT_SCHEMA],
                                     "description": email.get("description"), "title": email.get("title")}
    schema["anyOf"] = [{"required": ["email"], "properties": {"email": {"type": "string", "minLength": 1}}},
                       *(login_is_address(part) for part in EMAIL_SOURCES)]


class AccountCreate(StrictModel):
    model_config = ConfigDict(json_schema_extra=_email_required_unless_a_login_is_an_address)
    emailengine_ignored: ClassVar[tuple[str, ...]] = ee.ACCOUNT_CREATE

    account: AccountId | None = Field(None, description="Generated when omitted")
    name: str | None = Field(None, max_length=256)
    email: Annotated[EmailAddress, BeforeValidator(_refuse_no_email)] = Field(
        None, description=EMAIL_HELP)  # type: ignore[assignment]  # always set: _email_from_login
    imap: ImapSettings | None = Field(None, description="Required unless oauth2 is given")
    smtp: ServerSettings | None = None
    oauth2: OAuth2Login | None = Field(None, description=OAUTH2_LOGIN_HELP + " Excludes imap and smtp.")
    verify: bool = Field(True, description="Check the IMAP (and SMTP) login before saving")

    @model_validator(mode="before")
    @classmethod
    def _email_from_login(cls, data: Any) -> Any:
        # EmailEngine reads an empty email as absent (Joi's .empty('')).
        if not isinstance(data, dict) or data.get("email") not in (None, ""):
            return data
        if data.get("email") is None and "email" in data:
            return data  # null is no address: refused as the document says
        derived = next((address for part in EMAIL_SOURCES if (address := _login_address(data, part))), None)
        return {**data, "email": _NO_EMAIL if derived is None else derived}

    @model_validator(mode="after")
    def _one_login(self) -> AccountCreate:
        if self.oauth2 is None and self.imap is None:
            raise ValueError("give imap (with smtp if the account sends) or oauth2")
        if self.oauth2 is not None and (self.imap is not None or self.smtp is not None):
            raise ValueError("oauth2 takes its servers from the OAuth2 application: leave imap and smtp out")
        return self


def _empty_as_null(value: object) -> object:
    return None if value == "" else value  # EmailEngine reads "" as absent (Joi's .empty('') / .allow(''))


def _document_empty_too(schema: dict[str, Any]) -> None:
    schema["anyOf"].insert(1, EMPTY_TEXT_SCHEMA)


class AccountUpdate(StrictModel):
    emailengine_ignored: ClassVar[tuple[str, ...]] = ee.ACCOUNT_UPDATE

    name: str | None = Field(None, max_length=256)
    email: Annotated[EmailAddress | None, BeforeValidator(_empty_as_null)] = Field(
        None, description="Empty or null: unchanged", json_schema_extra=_document_empty_too)
    imap: ImapSettingsUpdate | None = None
    smtp: ServerSettingsUpdate | None = None
    oauth2: OAuth2LoginUpdate | None = Field(None, description="OAuth2 accounts only")
    verify: bool = True
    # -- webhooks: per-account override --
    # "" unsets, as in EmailEngine; read as null (a union would turn a bad URL's 422 into a 400).
    webhooks: Annotated[WebhookUrl | None, BeforeValidator(_empty_as_null)] = Field(
        None, description="Send this account's events here, signed with the account's own secret (generated with "
                          "the first URL and shown once, in this response); null or empty: the global URL",
        json_schema_extra=_document_empty_too)
    webhookEvents: list[WebhookEventName] | None = Field(
        None, description="Event types to send for this account; null: the global list")


class VerifyRequest(StrictModel):
    emailengine_ignored: ClassVar[tuple[str, ...]] = ee.VERIFY_ACCOUNT

    imap: ImapSettings | None = None
    smtp: ServerSettings | None = None
    oauth2: OAuth2Login | None = Field(None, description="Obtain an access token through the OAuth2 application "
                                       "and log in to its provider's servers (nothing is stored). Excludes imap "
                                       "and smtp.")

    @model_validator(mode="after")
    def _one_login(self) -> VerifyRequest:
        if self.oauth2 is not None and (self.imap is not None or self.smtp is not None):
            raise ValueError("give imap and smtp, or oauth2 (its application names the servers)")
        return self


class ServerAuthOut(OutputModel):
    """The login without its secret: ``pass`` or ``accessToken`` (whichever the account logs in
    with) is always ``******``."""

    user: str
    password: str | None = Field(MASKED_PASSWORD, alias="pass", serialization_alias="pass")
    accessToken: str | None = None


class ServerSettingsOut(OutputModel):
    host: str
    port: int
    secure: bool
    auth: ServerAuthOut
    tls: TlsSettings


class ImapSettingsOut(ServerSettingsOut):
    disabled: bool = False


class AccountError(OutputModel):
    """Why the account is in an error state (``authenticationError``, ``connectError``, ``syncError``)."""

    code: str = Field(description="Stable code, e.g. AuthenticationFailed, ConnectionRefused, CommandFailed")
    message: str = Field(description="What the watcher could not do")
    serverResponse: str | None = Field(None, description="The server's own words, when it said something")
    since: datetime = Field(description="When the account entered this state")


class OAuth2UserOut(OutputModel):
    user: str


class OAuth2Out(OutputModel):
    """An OAuth2 account's login, never a token."""

    provider: str = Field(description="The OAuth2 application's id")
    auth: OAuth2UserOut
    expires: datetime | None = Field(None, description="When the current access token expires")
    scopes: list[str] | None = None


class AccountOut(OutputModel):
    account: str
    name: str | None = None
    email: str | None = None
    state: AccountState
    imap: ImapSettingsOut | None = None
    smtp: ServerSettingsOut | None = None
    oauth2: OAuth2Out | None = None
    createdAt: datetime
    updatedAt: datetime
    lastError: AccountError | None = Field(None, description="Set while the state is an error; cleared on "
                                                             "`connected`")
    # -- webhooks: per-account override --
    webhooks: str | None = None
    webhookEvents: list[str] | None = None
    webhookSecretSet: bool = Field(False, description="Whether the override endpoint has its own signing secret "
                                                      "(it is never shown again)")


class AccountUpdated(AccountOut):
    webhookSecret: str | None = Field(
        None, description="The override endpoint's new signing secret, shown only in this response")


class AccountCreated(OutputModel):
    account: str
    state: AccountState


class AccountList(OutputModel):
    accounts: list[AccountOut]
    total: int = Field(description="Accounts that match the filters")
    page: int
    pages: int
    state: str = Field("*", description="The state filter applied, or * (EmailEngine's echo)")
    query: str | Literal[False] = Field(False, description="The search applied, or false (EmailEngine's echo)")


# EmailEngine's names for states this API calls otherwise, and its virtual "errors".
STATE_ALIASES: dict[str, tuple[str, ...]] = {
    "init": ("new",),
    "paused": ("disabled",),
    "errors": ("authenticationError", "connectError", "syncError"),
}
AccountStateFilter = Literal[AccountState, "init", "paused", "errors"]
ACCOUNT_QUERY_MAX_CHARS = 256


class AccountListQuery(PageQuery):
    state: AccountStateFilter | None = Field(
        None, description="Only accounts in this state; `errors`: any error state; EmailEngine's `init` is `new`, "
                          "`paused` is `disabled`")
    query: str | None = Field(None, min_length=1, max_length=ACCOUNT_QUERY_MAX_CHARS,
                              description="Only accounts whose id, name or email contains this text (any case)")

    def states(self) -> frozenset[str] | None:
        """The stored states the filter selects (None: every state)."""
        if self.state is None:
            return None
        return frozenset(STATE_ALIASES.get(self.state, (self.state,)))


class VerifyResult(OutputModel):
    success: bool
    code: str | None = None
    error: str | None = None
    serverResponse: str | None = None


class VerifyResponse(OutputModel):
    imap: VerifyResult | None = None
    smtp: VerifyResult | None = None
