"""Mailbox request/response shapes (EmailEngine-compatible field names)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag

from chalicelib.schemas.common import OutputModel, StrictModel

MAX_PATH_LENGTH = 1024
_FORBIDDEN_IN_PATH = re.compile(r"[\x00-\x1f\x7f]")


def check_mailbox_path(value: str) -> str:
    if not value.strip():
        raise ValueError("a mailbox path must not be empty")
    if _FORBIDDEN_IN_PATH.search(value):
        raise ValueError("a mailbox path must not contain control characters")
    return value


MailboxPath = Annotated[str, Field(min_length=1, max_length=MAX_PATH_LENGTH, examples=["INBOX", "Archive/2024"],
                                   description="Full path with the server's hierarchy delimiter"),
                        AfterValidator(check_mailbox_path)]
PathSegment = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(check_mailbox_path)]


def _path_form(value: Any) -> str:
    return "segments" if isinstance(value, list) else "path"


# Chosen by the JSON type, so a refusal names only the form that was sent (a list with a bad
# segment is that segment's error, not also "not a string").
PathOrSegments = Annotated[Annotated[MailboxPath, Tag("path")] | Annotated[list[PathSegment], Tag("segments")],
                           Discriminator(_path_form)]
SpecialUseSource = Literal["extension", "xlist", "name"]


class MailboxListQuery(StrictModel):
    counters: bool = Field(False, description="Include messages/unseen/uidNext/uidValidity (one STATUS each "
                                              "unless the server supports LIST-STATUS)")


class MailboxOut(OutputModel):
    path: str = Field(description="Full path, decoded from modified UTF-7")
    name: str = Field(description="Last path segment")
    delimiter: str | None = Field(description="The server's hierarchy delimiter")
    parentPath: str | None
    specialUse: str | None = Field(None, examples=["\\Sent"], description="\\Inbox, \\Sent, \\Trash, \\Drafts, "
                                   "\\Junk, \\Archive, \\All, \\Flagged, \\Important")
    specialUseSource: SpecialUseSource | None = Field(
        None, description="extension: RFC 6154 flag; xlist: Gmail's XLIST; name: a well-known (localized) name")
    subscribed: bool
    listed: bool = True
    noSelect: bool = Field(False, description="A hierarchy level only; cannot hold messages")
    messages: int | None = None
    unseen: int | None = None
    uidNext: int | None = None
    uidValidity: int | None = None


class MailboxList(OutputModel):
    mailboxes: list[MailboxOut]


class MailboxCreate(StrictModel):
    path: PathOrSegments = Field(
        description="A full path, or its segments (joined with the server's delimiter)",
        examples=["Projects/2024", ["Projects", "2024"]])


class MailboxCreated(OutputModel):
    path: str
    created: bool


class MailboxRename(StrictModel):
    path: MailboxPath
    newPath: PathOrSegments


class MailboxRenamed(OutputModel):
    path: str
    newPath: str
    renamed: bool


class MailboxDeleteQuery(StrictModel):
    path: MailboxPath


class MailboxDeleted(OutputModel):
    path: str
    deleted: bool
