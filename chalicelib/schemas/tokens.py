"""API token request/response shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from chalicelib.schemas.common import AccountId, OutputModel, StrictModel

# "*": everything, including tokens and settings. "api": accounts, mailboxes, messages.
Scope = Literal["*", "api"]


def _all_scopes() -> list[Scope]:
    return ["*"]


class TokenCreate(StrictModel):
    description: str = Field(min_length=1, max_length=256)
    scopes: list[Scope] = Field(default_factory=_all_scopes, min_length=1)
    account: AccountId | None = Field(None, description="Bind the token to one account")


class TokenCreated(OutputModel):
    id: str
    token: str = Field(description="Shown only in this response; store it now")


class TokenOut(OutputModel):
    id: str
    description: str
    scopes: list[str]
    account: str | None = None
    createdAt: datetime


class TokenList(OutputModel):
    tokens: list[TokenOut]
