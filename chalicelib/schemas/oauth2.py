"""OAuth2 application shapes (field names follow EmailEngine's ``/v1/oauth2``).

The document carries every type, length and enum; which fields belong to which provider
(``authority`` to ``outlook``; ``authorizationUrl``, ``tokenUrl``, ``scopes``, ``imap``,
``smtp`` to ``generic``, where the first four are required) is a rule across fields,
checked by the models' own validators (a 422).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, SecretStr, model_validator

from chalicelib.oauth2.providers import Provider
from chalicelib.schemas.accounts import MASKED_PASSWORD
from chalicelib.schemas.common import OutputModel, PageQuery, StrictModel
from chalicelib.webhooks.client import MAX_URL_LENGTH, check_url_syntax

HttpUrl = Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH, examples=["https://example.com/oauth"]),
                    AfterValidator(check_url_syntax)]
# Scopes are space-separated on the wire (RFC 6749 3.3): one scope has no space.
OAuthScope = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x21\x23-\x5B\x5D-\x7E]+$",
                                  examples=["https://mail.google.com/"])]
ScopeList = Annotated[list[OAuthScope], Field(max_length=50)]
# A tenant id, a verified domain, or common/organizations/consumers: one URL path segment.
Authority = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._-]+$",
                                 examples=["common"],
                                 description="outlook only: common, organizations, consumers or a tenant id")]
ClientSecret = Annotated[SecretStr, Field(min_length=1, max_length=512,
                                          description="Sealed at rest; always shown as ******")]
ProviderField = Annotated[Provider, Field(description="gmail (Google), outlook (Microsoft 365 and Outlook.com) "
                                                      "or generic (any OAuth2 provider and IMAP server)")]
GENERIC_FIELDS = ("authorizationUrl", "tokenUrl", "scopes", "imap", "smtp")
GENERIC_REQUIRED = ("authorizationUrl", "tokenUrl", "scopes", "imap")


class MailEndpoint(StrictModel):
    host: str = Field(min_length=1, max_length=253, examples=["imap.example.com"])
    port: int = Field(ge=1, le=65535, examples=[993])
    secure: bool = Field(False, description="Implicit TLS; false upgrades with STARTTLS")


def check_provider_fields(provider: str, given: dict[str, Any]) -> None:
    """Which fields the provider takes (``given``: field name -> value, None when absent)."""
    if provider != "outlook" and given.get("authority") is not None:
        raise ValueError("authority applies to the outlook provider only")
    present = [name for name in GENERIC_FIELDS if given.get(name) is not None]
    if provider != "generic" and present:
        raise ValueError(f"{', '.join(present)}: for the generic provider only ({provider} has its own)")
    if provider == "generic":
        missing = [name for name in GENERIC_REQUIRED if given.get(name) is None]
        if missing:
            raise ValueError(f"the generic provider needs {', '.join(missing)}")


class OAuth2AppCreate(StrictModel):
    name: str = Field(min_length=1, max_length=256)
    provider: ProviderField
    enabled: bool = True
    clientId: str = Field(min_length=1, max_length=256)
    clientSecret: ClientSecret
    redirectUrl: HttpUrl = Field(description="The callback URL registered with the provider")
    authority: Authority | None = None
    baseScopes: Literal["imap"] = Field("imap", description="imap: the scopes IMAP and SMTP logins need")
    extraScopes: ScopeList = Field(default_factory=list, description="Scopes requested in addition")
    skipScopes: ScopeList = Field(default_factory=list, description="Scopes of the base set not to request")
    authorizationUrl: HttpUrl | None = Field(None, description="generic only")
    tokenUrl: HttpUrl | None = Field(None, description="generic only")
    scopes: ScopeList | None = Field(None, description="generic only: the base scopes")
    imap: MailEndpoint | None = Field(None, description="generic only: the IMAP server of the accounts")
    smtp: MailEndpoint | None = Field(None, description="generic only: the SMTP server of the accounts")

    @model_validator(mode="after")
    def _provider_fields(self) -> OAuth2AppCreate:
        check_provider_fields(self.provider, {name: getattr(self, name) for name in ("authority", *GENERIC_FIELDS)})
        return self


class OAuth2AppUpdate(StrictModel):
    """Only the fields given change (null: unchanged). A change of where tokens are requested
    (``provider``, ``authority``, ``tokenUrl``) or of ``clientId`` needs ``clientSecret`` again."""

    name: str | None = Field(None, min_length=1, max_length=256)
    provider: ProviderField | None = None
    enabled: bool | None = None
    clientId: str | None = Field(None, min_length=1, max_length=256)
    clientSecret: ClientSecret | None = None
    redirectUrl: HttpUrl | None = None
    authority: Authority | None = None
    baseScopes: Literal["imap"] | None = None
    extraScopes: ScopeList | None = None
    skipScopes: ScopeList | None = None
    authorizationUrl: HttpUrl | None = None
    tokenUrl: HttpUrl | None = None
    scopes: ScopeList | None = None
    imap: MailEndpoint | None = None
    smtp: MailEndpoint | None = None


class OAuth2AppCreated(OutputModel):
    id: str


class OAuth2AppOut(OutputModel):
    id: str
    name: str
    provider: str
    enabled: bool
    clientId: str
    clientSecret: str = Field(MASKED_PASSWORD, description="Always ******")
    redirectUrl: str
    authority: str | None = None
    baseScopes: str = "imap"
    extraScopes: list[str] = Field(default_factory=list)
    skipScopes: list[str] = Field(default_factory=list)
    authorizationUrl: str | None = None
    tokenUrl: str | None = None
    scopes: list[str] | None = None
    imap: MailEndpoint | None = None
    smtp: MailEndpoint | None = None
    created: datetime
    updated: datetime


class OAuth2AppList(OutputModel):
    apps: list[OAuth2AppOut]
    total: int
    page: int
    pages: int


class OAuth2AppListQuery(PageQuery):
    pass


class OAuth2TokenOut(OutputModel):
    """An account's current access token (``GET /v1/account/{account}/oauth-token``)."""

    account: str
    user: str
    accessToken: str = Field(description="Current access token; refreshed first when it was due")
    provider: str = Field(description="The OAuth2 application's id")
    expires: datetime | None = None
    scopes: list[str] | None = None
