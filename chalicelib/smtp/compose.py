"""Building the exact bytes of an outgoing message with Python's ``email`` package (pure).

Body structure, each level only when needed::

    multipart/mixed                      when there are regular attachments
    +-- multipart/alternative            when there is HTML (plain text is generated if missing)
    |   +-- text/plain
    |   +-- multipart/related            when attachments are referenced as cid: from the HTML
    |       +-- text/html
    |       +-- image/png  (Content-ID)
    +-- application/pdf  (attachment)

Headers: From, To, Cc, Reply-To, Subject, Date, Message-ID, In-Reply-To, References, the
caller's own headers, MIME-Version. Never Bcc: Bcc recipients exist only in the SMTP
envelope; :meth:`ComposedMessage.sent_copy` adds the Bcc line back to the copy stored in
the user's Sent folder, as desktop mail clients do, so the user still sees whom they
blind-copied.

Encodings:
- An ASCII message (the normal case) uses ``policy.SMTP``: CRLF, lines folded at 78,
  display names, subjects and filenames RFC 2047/2231-encoded, IDN domains as A-labels.
- A message with a Unicode local part anywhere in From/To/Cc/Bcc/Reply-To cannot be
  written in ASCII at all; it uses ``policy.SMTPUTF8`` (raw UTF-8 headers, RFC 6532) and
  its envelope asks for SMTPUTF8. Whether the server offers it is known only after EHLO,
  so the delivery step enforces it (``smtp.delivery``).
- Text parts are 7bit when they are ASCII with lines of at most 998 octets, otherwise
  quoted-printable; attachments are always base64. No part is 8bit, so the message is valid
  on servers without 8BITMIME and survives any relay byte for byte.

Invariant: ``ComposedMessage.raw`` is exactly what is handed to the server; the Sent copy is
those bytes (plus the Bcc line when there were Bcc recipients).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime

from chalicelib.smtp.addresses import AddressEncodingError, Mailbox, ascii_domain, unique_mailboxes
from chalicelib.smtp.headertext import EncodedAddressList, EncodedText, clean_header_text, header_text_problem

MAX_LINE_OCTETS = 998  # RFC 5322 2.1.1, without the CRLF
# Header fields the request sets through dedicated fields, and MIME structure we own.
HEADERS_WITH_FIELDS = {"from": "from", "to": "to", "cc": "cc", "bcc": "bcc", "reply-to": "replyTo",
                       "subject": "subject", "message-id": "messageId", "date": None}
STRUCTURE_HEADERS = {"mime-version", "content-type", "content-transfer-encoding", "content-disposition",
                     "content-id"}
THREADING_HEADERS = {"in-reply-to", "references"}
_FIELD_NAME = re.compile(r"^[!-9;-~]{1,76}$")  # RFC 5322 ftext, short enough to fold
# Printable ASCII without "<", ">" and "@" on either side of the "@".
_MESSAGE_ID = re.compile(r"^(?:<([!-;=?A-~]+@[!-;=?A-~]+)>|([!-;=?A-~]+@[!-;=?A-~]+))$")
_CONTENT_TYPE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126})/([A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126})$")


class ComposeError(ValueError):
    """The message cannot be built as asked; ``field`` names the request field at fault."""

    def __init__(self, field: str, message: str, *, code: str = "ValidationError") -> None:
        super().__init__(message)
        self.field = field
        self.code = code


@dataclass(frozen=True)
class AttachmentSpec:
    content: bytes
    content_type: str = "application/octet-stream"
    filename: str | None = None
    content_id: str | None = None  # without angle brackets
    field: str = "attachments"     # request field it came from ("attachments.2"), for errors


@dataclass(frozen=True)
class OutgoingMessage:
    sender: Mailbox
    to: tuple[Mailbox, ...] = ()
    cc: tuple[Mailbox, ...] = ()
    bcc: tuple[Mailbox, ...] = ()
    reply_to: tuple[Mailbox, ...] = ()
    subject: str = ""
    text: str | None = None
    html: str | None = None
    attachments: tuple[AttachmentSpec, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    message_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class Envelope:
    """SMTP envelope: MAIL FROM, RCPT TO (To + Cc + Bcc, each once), and whether it needs SMTPUTF8."""

    mail_from: str
    recipients: tuple[str, ...]
    smtputf8: bool = False


@dataclass(frozen=True)
class ComposedMessage:
    raw: bytes
    message_id: str
    envelope: Envelope
    bcc_header: bytes = field(default=b"", repr=False)

    def sent_copy(self) -> bytes:
        """What goes into the Sent folder: the sent bytes, with the Bcc line first if any."""
        return self.bcc_header + self.raw


def normalize_message_id(value: str) -> str:
    """``<id@host>`` from ``id@host`` or ``<id@host>``; ValueError for anything else."""
    match = _MESSAGE_ID.match(value.strip())
    if not match:
        raise ValueError(f"not a Message-ID (expected <local@domain>): {value!r}")
    return f"<{match.group(1) or match.group(2)}>"


def new_message_id(sender: Mailbox) -> str:
    """A globally unique Message-ID in the sender's domain, as mail clients make them."""
    return f"<{uuid.uuid4()}@{ascii_domain(sender.domain)}>"


def check_custom_headers(headers: tuple[tuple[str, str], ...], *, threading_set: bool) -> None:
    """Reject header names that are malformed, reserved, or set by the request's own fields."""
    for name, value in headers:
        where = f"headers.{name}"
        lowered = name.lower()
        if not _FIELD_NAME.match(name):
            raise ComposeError(where, "not a valid header name (printable ASCII without ':' or spaces)")
        problem = header_text_problem(value)
        if problem:
            raise ComposeError(where, f"header values must be one line of text; this one {problem}")
        if lowered in HEADERS_WITH_FIELDS:
            request_field = HEADERS_WITH_FIELDS[lowered]
            hint = f"use the '{request_field}' field" if request_field else "it is set when the message is sent"
            raise ComposeError(where, f"{name} cannot be set as a header: {hint}")
        if lowered in STRUCTURE_HEADERS:
            raise ComposeError(where, f"{name} is part of the MIME structure built from text, html and attachments")
        if lowered in THREADING_HEADERS and threading_set:
            raise ComposeError(where, f"{name} is set from 'reference'; do not set it twice")


def _text_cte(text: str) -> str:
    if text.isascii() and all(len(line) <= MAX_LINE_OCTETS for line in text.splitlines()):
        return "7bit"
    return "quoted-printable"


def _new_part() -> MIMEPart:
    # Parts are serialized by the root's generator with the root's policy (SMTP or SMTPUTF8);
    # their own policy only shapes what set_content writes, which is the same for both.
    return MIMEPart(policy=email_policy.SMTP)


def _text_part(text: str, subtype: str, target: MIMEPart | None = None) -> MIMEPart:
    part = target if target is not None else _new_part()
    part.set_content(text, subtype=subtype, charset="utf-8", cte=_text_cte(text))
    return part


def _attachment_part(attachment: AttachmentSpec, disposition: str) -> MIMEPart:
    match = _CONTENT_TYPE.match(attachment.content_type.strip())
    if not match:
        raise ComposeError(f"{attachment.field}.contentType", "expected type/subtype, e.g. application/pdf")
    maintype, subtype = match.group(1).lower(), match.group(2).lower()
    if maintype == "multipart":
        raise ComposeError(f"{attachment.field}.contentType", "multipart/* cannot be attached as content")
    part = _new_part()
    part.set_content(attachment.content, maintype, subtype, cte="base64", disposition=disposition,
                     filename=clean_header_text(attachment.filename) if attachment.filename else None,
                     cid=f"<{attachment.content_id}>" if attachment.content_id else None)
    return part


def _container(subtype: str, children: list[MIMEPart], target: MIMEPart | None = None) -> MIMEPart:
    part = target if target is not None else _new_part()
    part["Content-Type"] = f"multipart/{subtype}"
    for child in children:
        part.attach(child)
    return part


def _references_in_html(html: str | None, attachments: tuple[AttachmentSpec, ...]) -> set[str]:
    if not html:
        return set()
    lowered = html.lower()
    return {a.content_id for a in attachments if a.content_id and f"cid:{a.content_id.lower()}" in lowered}


def _build_body(root: EmailMessage, message: OutgoingMessage, text_from_html: Callable[[str], str]) -> None:
    """Fill ``root`` with the body tree (see the module docstring)."""
    html = message.html
    text = message.text if message.text is not None else (text_from_html(html) if html else "")
    inline_ids = _references_in_html(html, message.attachments)
    inline = [a for a in message.attachments if a.content_id in inline_ids]
    regular = [a for a in message.attachments if a.content_id not in inline_ids or not a.content_id]
    has_parts = html is not None or regular
    if not has_parts:
        _text_part(text, "plain", root)
        return
    root["MIME-Version"] = "1.0"
    body: MIMEPart
    if html is not None:
        html_node: MIMEPart = _text_part(html, "html")
        if inline:
            html_node = _container("related", [html_node, *(_attachment_part(a, "inline") for a in inline)])
        alternatives = [_text_part(text, "plain"), html_node]
        body = _container("alternative", alternatives, None if regular else root)
    else:
        body = _text_part(text, "plain")
    if regular:
        _container("mixed", [body, *(_attachment_part(a, "attachment") for a in regular)], root)


def _address_header_value(name: str, mailboxes: tuple[Mailbox, ...], smtputf8: bool) -> list[Address] | str:
    addresses = [m.header_address(smtputf8=smtputf8) for m in mailboxes]
    if smtputf8 or all(a.display_name.isascii() for a in addresses):
        return addresses
    # Non-ASCII names are encoded here, where no space can be lost (see chalicelib.smtp.headertext).
    return EncodedAddressList(name, addresses)


def _set_address_header(root: EmailMessage, name: str, mailboxes: tuple[Mailbox, ...], smtputf8: bool) -> None:
    if mailboxes:
        root[name] = _address_header_value(name, mailboxes, smtputf8)


def _largest_part_field(message: OutgoingMessage) -> str:
    sizes = {"text": len((message.text or "").encode()), "html": len((message.html or "").encode())}
    for attachment in message.attachments:
        sizes[f"{attachment.field}.content"] = len(attachment.content) * 4 // 3  # base64 growth
    return max(sizes, key=lambda name: sizes[name])


def compose(message: OutgoingMessage, *, text_from_html: Callable[[str], str], now: datetime | None = None,
            max_bytes: int | None = None) -> ComposedMessage:
    """Build the message; ComposeError (naming the field) when it cannot be built as asked."""
    try:
        return _compose(message, text_from_html, now, max_bytes)
    except AddressEncodingError as exc:  # a domain the syntax check passed but IDNA 2008 refuses
        raise ComposeError("to", str(exc)) from None


def _compose(message: OutgoingMessage, text_from_html: Callable[[str], str], now: datetime | None,
             max_bytes: int | None) -> ComposedMessage:
    all_addresses = (message.sender, *message.to, *message.cc, *message.bcc, *message.reply_to)
    smtputf8 = any(m.needs_smtputf8 for m in all_addresses)
    policy = email_policy.SMTPUTF8 if smtputf8 else email_policy.SMTP
    recipients = unique_mailboxes([*message.to, *message.cc, *message.bcc])
    if not recipients:
        raise ComposeError("to", "at least one recipient (to, cc or bcc) is required")
    threading_set = message.in_reply_to is not None or bool(message.references)
    check_custom_headers(message.headers, threading_set=threading_set)
    message_id = normalize_message_id(message.message_id) if message.message_id else new_message_id(message.sender)

    root = EmailMessage(policy=policy)
    _set_address_header(root, "From", (message.sender,), smtputf8)
    _set_address_header(root, "To", message.to, smtputf8)
    _set_address_header(root, "Cc", message.cc, smtputf8)
    _set_address_header(root, "Reply-To", message.reply_to, smtputf8)
    subject = clean_header_text(message.subject)
    # Raw UTF-8 under SMTPUTF8 and plain ASCII fold without encoded words; the rest is encoded
    # here, where no space can be lost (see chalicelib.smtp.headertext).
    root["Subject"] = subject if smtputf8 or subject.isascii() else EncodedText("Subject", subject)
    root["Date"] = format_datetime(now or datetime.now(UTC))
    root["Message-ID"] = message_id
    if message.in_reply_to:
        root["In-Reply-To"] = message.in_reply_to
    if message.references:
        root["References"] = " ".join(message.references)
    for name, value in message.headers:
        root[name] = value
    _build_body(root, message, text_from_html)
    raw = root.as_bytes(policy=policy)
    if max_bytes is not None and len(raw) > max_bytes:
        raise ComposeError(_largest_part_field(message),
                           f"the message would be {len(raw)} bytes, over the limit of {max_bytes}",
                           code="MessageTooLarge")

    bcc_header = b""
    if message.bcc:
        name, value = policy.header_store_parse("Bcc", _address_header_value("Bcc", message.bcc, smtputf8))
        bcc_header = policy.fold_binary(name, value)
    envelope = Envelope(mail_from=message.sender.envelope_address(smtputf8=smtputf8),
                        recipients=tuple(m.envelope_address(smtputf8=smtputf8) for m in recipients),
                        smtputf8=smtputf8)
    return ComposedMessage(raw=raw, message_id=message_id, envelope=envelope, bcc_header=bcc_header)
