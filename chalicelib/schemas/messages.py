"""Message request/response shapes (EmailEngine-compatible field names where it has the feature)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, model_validator

from chalicelib.schemas import emailengine_fields as ee
from chalicelib.schemas.common import Cursor, EmailAddress, IsoDateTime, IsoDay, OutputModel, PageQuery, StrictModel
from chalicelib.schemas.mailboxes import MailboxPath
from chalicelib.schemas.sending import MAX_CUSTOM_HEADERS, SendReference

# RFC 3501 flag: a system flag (\Seen) or a keyword atom ($Forwarded, Work). No "\*", no
# characters that end an atom. Checked here so a bad flag is a 400 naming the field, not a BAD.
_FLAG = re.compile(r"^\\?[!#$&'+\-.0-9:;<=>?@A-Z^_`a-z|~]{1,128}$")
MAX_FLAGS = 64


def check_flag(value: str) -> str:
    if not _FLAG.match(value):
        raise ValueError("not an IMAP flag: \\Seen, \\Flagged, \\Answered, \\Draft, \\Deleted or a keyword "
                         "atom such as $Forwarded")
    return value


Flag = Annotated[str, AfterValidator(check_flag)]
Label = Annotated[str, Field(min_length=1, max_length=255)]


# -- listing -------------------------------------------------------------------------------


class AddressOut(OutputModel):
    name: str | None = None
    address: str


class AttachmentOut(OutputModel):
    id: str = Field(description="Opaque attachment id for GET /attachment/{id}")
    filename: str | None = None
    contentType: str
    encodedSize: int = Field(description="Size as stored (still transfer-encoded)")
    embedded: bool = Field(description="Referenced from the HTML as cid:")
    inline: bool
    contentId: str | None = Field(None, description="Without angle brackets")


class TextSizes(OutputModel):
    plain: int = 0
    html: int = 0


class TextSummary(OutputModel):
    id: str = Field(description="Opaque id of the body text parts for GET /text/{id}")
    encodedSize: TextSizes


class MessageEntry(OutputModel):
    id: str = Field(description="Opaque message id, stable while the message stays in its mailbox")
    uid: int
    emailId: str | None = Field(None, description="OBJECTID EMAILID or Gmail's X-GM-MSGID, when the server has them")
    threadId: str | None = None
    path: str
    date: datetime = Field(description="Date header, or the arrival time when it is missing or invalid")
    internalDate: datetime | None = None
    size: int
    flags: list[str]
    labels: list[str] | None = Field(None, description="Gmail labels")
    unseen: bool
    flagged: bool
    answered: bool
    draft: bool
    subject: str
    from_: AddressOut | None = Field(None, alias="from")
    sender: AddressOut | None = None
    replyTo: list[AddressOut] | None = None
    to: list[AddressOut]
    cc: list[AddressOut]
    bcc: list[AddressOut] | None = None
    messageId: str | None = None
    inReplyTo: str | None = None
    attachments: list[AttachmentOut]
    text: TextSummary
    preview: str | None = Field(None, description="Start of the text, when the server offers PREVIEW (RFC 8970)")


class MessageList(OutputModel):
    total: int
    page: int
    pages: int
    nextPageCursor: str | None = Field(None, description="Continues after this page; stable while mail arrives")
    messages: list[MessageEntry]


class MessageListQuery(PageQuery):
    path: MailboxPath = "INBOX"
    cursor: Cursor | None = Field(None, description="nextPageCursor of the previous page")


# -- one message -----------------------------------------------------------------------------


class TextContent(TextSummary):
    """The summary's text parts, decoded (the detail view carries the text itself)."""

    plain: str | None = None
    html: str | None = None
    hasMore: bool = Field(description="A text was cut at maxBytes")
    webSafe: bool | None = Field(None, description="html was sanitized for display in a browser (webSafeHtml)")


class MessageDetail(MessageEntry):
    headers: dict[str, list[str]] = Field(description="Lower-case names, decoded values, in message order")
    text: TextContent
    references: list[str] = Field(default_factory=list)
    warnings: list[str] | None = Field(None, description="What could not be done as asked (an image not embedded)")


class MessageGetQuery(StrictModel):
    textType: Literal["plain", "html", "*"] = "*"
    maxBytes: int = Field(2_000_000, ge=0, le=5_000_000, description="Per text type, UTF-8 bytes")
    markAsSeen: bool = False
    webSafeHtml: bool = Field(False, description="Sanitize the HTML for display in a browser (made from the "
                                                 "plain text when there is none); reads both text types")
    embedAttachedImages: bool | None = Field(None, description="Inline cid: images as data: URLs (bounded); "
                                                               "absent: as webSafeHtml")


class TextQuery(StrictModel):
    textType: Literal["plain", "html", "*"] = "*"
    maxBytes: int = Field(2_000_000, ge=0, le=5_000_000)
    webSafeHtml: bool = Field(False, description="One sanitized html (made from the plain text when there is no "
                                                 "HTML) and no plain")


class TextOnly(OutputModel):
    plain: str | None = None
    html: str | None = None
    hasMore: bool
    webSafe: bool | None = Field(None, description="html was sanitized for display in a browser (webSafeHtml)")


# -- changes ---------------------------------------------------------------------------------


class FlagChange(StrictModel):
    add: list[Flag] | None = Field(None, max_length=MAX_FLAGS)
    delete: list[Flag] | None = Field(None, max_length=MAX_FLAGS)
    set: list[Flag] | None = Field(None, max_length=MAX_FLAGS, description="Replaces all flags (applied first)")


class LabelChange(StrictModel):
    add: list[Label] | None = Field(None, max_length=MAX_FLAGS)
    delete: list[Label] | None = Field(None, max_length=MAX_FLAGS)
    set: list[Label] | None = Field(None, max_length=MAX_FLAGS)


class MessageUpdate(StrictModel):
    flags: FlagChange | None = None
    labels: LabelChange | None = Field(None, description="Gmail only")


class ChangeResult(OutputModel):
    added: list[str]
    removed: list[str]
    current: list[str]


class MessageUpdated(OutputModel):
    flags: ChangeResult | None = None
    labels: ChangeResult | None = None


class MoveRequest(StrictModel):
    emailengine_ignored: ClassVar[tuple[str, ...]] = ee.MESSAGE_MOVE

    path: MailboxPath = Field(description="Destination mailbox")


class MessageMoved(OutputModel):
    path: str
    id: str | None = Field(None, description="The message's id in the destination (needs UIDPLUS)")
    uid: int | None = None


class DeleteQuery(StrictModel):
    force: bool = Field(False, description="Expunge instead of moving to Trash")


class MessageDeleted(OutputModel):
    deleted: bool = Field(description="True when expunged; false when moved to Trash")
    moved: MessageMoved | None = None


# -- search ----------------------------------------------------------------------------------


class SearchQuery(StrictModel):
    seq: str | None = Field(None, max_length=1024, description="Sequence set, e.g. 1:10")
    uid: str | None = Field(None, max_length=1024, description="UID set, e.g. 100:*")
    from_: str | None = Field(None, alias="from", max_length=1024)
    to: str | None = Field(None, max_length=1024)
    cc: str | None = Field(None, max_length=1024)
    bcc: str | None = Field(None, max_length=1024)
    subject: str | None = Field(None, max_length=1024)
    body: str | None = Field(None, max_length=1024)
    text: str | None = Field(None, max_length=1024)
    header: dict[str, str] | None = Field(None, max_length=16, description="{name: value}; '' = header present")
    since: IsoDay | None = Field(None, description="Arrived on or after this day")
    before: IsoDay | None = None
    sentSince: IsoDay | None = Field(None, description="Date header on or after this day")
    sentBefore: IsoDay | None = None
    larger: int | None = Field(None, ge=0)
    smaller: int | None = Field(None, ge=0)
    seen: bool | None = None
    unseen: bool | None = None
    flagged: bool | None = None
    answered: bool | None = None
    draft: bool | None = None
    deleted: bool | None = None
    keyword: str | None = Field(None, max_length=128)
    emailId: str | None = Field(None, max_length=255)
    threadId: str | None = Field(None, max_length=255)
    gmailRaw: str | None = Field(None, max_length=1024, description="Gmail search syntax (Gmail only)")

    def criteria(self) -> dict:
        return self.model_dump(by_alias=True, exclude_none=True)


class SearchRequest(StrictModel):
    search: SearchQuery


class SearchListQuery(MessageListQuery):
    pass


class SearchUrlQuery(SearchListQuery):
    """GET /search: the POST body's ``search`` object as ``search[from]=...`` query keys."""

    search: SearchQuery = Field(default_factory=SearchQuery,
                                description="search[from]=..., search[header][X-Foo]=...; none: every message")

    @model_validator(mode="before")
    @classmethod
    def _empty_header(cls, data: Any) -> Any:
        # ``search[header]=`` with no name is how a query string writes an empty object.
        search = data.get("search") if isinstance(data, dict) else None
        if isinstance(search, dict) and search.get("header") == "":
            data = {**data, "search": {k: v for k, v in search.items() if k != "header"}}
        return data


# -- bulk ------------------------------------------------------------------------------------


class BulkPathQuery(StrictModel):
    path: MailboxPath = "INBOX"


class BulkFlagsRequest(StrictModel):
    search: SearchQuery
    flags: FlagChange


class BulkMoveRequest(StrictModel):
    search: SearchQuery
    path: MailboxPath = Field(description="Destination mailbox")


class BulkDeleteRequest(StrictModel):
    search: SearchQuery
    force: bool = False


class BulkResult(OutputModel):
    path: str
    matched: int
    updated: int | None = None
    moved: int | None = None
    deleted: int | None = None
    destination: str | None = None


# -- upload (APPEND) --------------------------------------------------------------------------


class AddressIn(StrictModel):
    name: str | None = Field(None, max_length=256)
    address: EmailAddress


class AttachmentIn(StrictModel):
    filename: str | None = Field(None, max_length=255)
    content: str = Field(description="Base64")
    contentType: str = Field("application/octet-stream", max_length=255)
    cid: str | None = Field(None, max_length=255, description="Content-ID for cid: references from the HTML")


class MessageUpload(StrictModel):
    path: MailboxPath
    flags: list[Flag] = Field(default_factory=list, max_length=MAX_FLAGS)
    internalDate: IsoDateTime | None = Field(None, description="Arrival time to record (default: now)")
    raw: str | None = Field(None, description="The whole RFC 822 message, base64; excludes the fields below")
    from_: AddressIn | None = Field(None, alias="from")
    to: list[AddressIn] = Field(default_factory=list, max_length=500)
    cc: list[AddressIn] = Field(default_factory=list, max_length=500)
    bcc: list[AddressIn] = Field(default_factory=list, max_length=500)
    subject: str | None = Field(None, max_length=998)
    text: str | None = None
    html: str | None = None
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=100)
    messageId: str | None = Field(None, max_length=998)
    headers: dict[str, str] = Field(default_factory=dict, max_length=MAX_CUSTOM_HEADERS,
                                    description="Extra header fields of the built message")
    reference: SendReference | None = Field(None, description="Draft a reply to, or a forward of, this message: "
                                                              "threading headers, subject prefix, recipients and "
                                                              "quote as POST /submit builds them")

    @model_validator(mode="after")
    def raw_or_fields(self) -> MessageUpload:
        built = {"from_": self.from_, "subject": self.subject, "text": self.text, "html": self.html,
                 "to": self.to, "cc": self.cc, "bcc": self.bcc, "attachments": self.attachments,
                 "messageId": self.messageId, "headers": self.headers, "reference": self.reference}
        used = [name.rstrip("_") for name, value in built.items() if value]
        if self.raw is not None and used:
            raise ValueError(f"give either raw or message fields, not both (also given: {', '.join(used)})")
        if self.raw is None and self.from_ is None:
            raise ValueError("from is required unless raw is given")
        return self


class MessageUploaded(OutputModel):
    id: str | None = None
    uid: int | None = None
    path: str
    messageId: str | None = None
