"""Hosted authorization shapes (EmailEngine's ``POST /v1/authentication/form``)."""

from __future__ import annotations

from pydantic import Field

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
