"""Hosted authorization shapes (EmailEngine's ``POST /v1/authentication/form``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.schemas.accounts import APP_ID_PATTERN
from chalicelib.schemas.common import AccountId, EmailAddress, OutputModel, StrictModel
from chalicelib.schemas.oauth2 import HttpUrl


class AuthenticationForm(StrictModel):
    account: AccountId = Field(description="The account to create, or to re-authorize when it exists")
    name: str | None = Field(None, max_length=256)
    email: EmailAddress | None = Field(None, description="The mailbox's address and login; required for a new "
                                                         "account (sent to the provider as login_hint)")
    redirectUrl: HttpUrl = Field(description="Where the user is sent back: ?account=...&state=new|existing, "
                                             "or ?error=...")
    type: str = Field(pattern=APP_ID_PATTERN, description="The id of the OAuth2 application")


class AuthenticationFormOut(OutputModel):
    url: str = Field(description="Send the user's browser here: the provider's consent page")


class OAuthCallbackQuery(BaseModel):
    """What a provider appends to the redirect URI (RFC 6749 4.1.2). Other parameters some
    providers add (Google's ``scope``, ``authuser``, ``hd``; Microsoft's ``session_state``) are ignored."""

    model_config = ConfigDict(extra="ignore")

    state: str = Field(max_length=512, description="The state the form's URL carried")
    code: str | None = Field(None, max_length=4096, description="The authorization code, on consent")
    error: str | None = Field(None, max_length=256, description="The provider's error code, e.g. access_denied")
    error_description: str | None = Field(None, max_length=2048)
