"""Preparing an existing message (a draft, or a ``raw`` submit) for sending, keeping its bytes (pure).

A draft saved by a mail client, or a message a caller built itself, is already a complete
MIME message; re-serializing it through the ``email`` package could re-encode its parts, so
only the header block is touched, line by line:

- ``Bcc`` is removed from the sent bytes (its addresses go to the envelope, and the line
  comes back in the Sent copy, as when composing; EmailEngine strips it the same way);
- ``Date``: a draft's becomes the sending time (a client stamps the moment of sending, not
  of saving); a raw message keeps its own and gets one only when it has none;
- ``Message-ID`` is added when the message has none;
- bare LF line ends become CRLF (IMAP servers store drafts either way; SMTP needs CRLF);
- envelope: From is MAIL FROM, To + Cc + Bcc (each once) are RCPT TO.

Header folding is respected: a field is its first line plus every following line that
starts with a space or tab.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from chalicelib.smtp.addresses import AddressEncodingError, Mailbox, unique_mailboxes
from chalicelib.smtp.compose import ComposedMessage, ComposeError, Envelope, new_message_id

_BARE_LF = re.compile(rb"(?<!\r)\n")
_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:")

# address list header value -> mailboxes (the tolerant parser of the MIME decoder)
AddressParser = Callable[[bytes], list[Mailbox]]


@dataclass(frozen=True)
class HeaderField:
    name: str     # lower-case
    raw: bytes    # the whole field, folded lines and the final CRLF included

    @property
    def value(self) -> bytes:
        return self.raw.split(b":", 1)[1].strip()


def split_message(raw: bytes) -> tuple[list[HeaderField], bytes]:
    """(header fields, body with its leading blank line) of a CRLF message."""
    end = raw.find(b"\r\n\r\n")
    header_block, body = (raw, b"") if end < 0 else (raw[:end + 2], raw[end + 2:])
    fields: list[HeaderField] = []
    for line in header_block.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] = HeaderField(fields[-1].name, fields[-1].raw + line)
            continue
        match = _FIELD_NAME.match(line)
        if match:
            fields.append(HeaderField(match.group(1).decode("ascii").lower(), line))
        # anything else (a stray mbox "From " line, garbage) is dropped
    return fields, body


def prepare_draft(raw: bytes, parse_addresses: AddressParser, *, now: datetime | None = None) -> ComposedMessage:
    """The draft as it will be sent, with its envelope; ComposeError when it has no sender/recipient."""
    return _prepare(raw, parse_addresses, now=now, restamp_date=True, origin="draft")


def prepare_raw(raw: bytes, parse_addresses: AddressParser, *, envelope: Envelope | None = None,
                now: datetime | None = None) -> ComposedMessage:
    """A caller's own message as it will be sent: its bytes unchanged but for Bcc, and Date and
    Message-ID when missing. ``envelope`` (the caller's) replaces the one its headers give, so
    its To/Cc/Bcc may then be empty; ComposeError naming ``raw`` when it has no From."""
    return _prepare(raw, parse_addresses, now=now, restamp_date=False, origin="raw", envelope=envelope)


def _prepare(raw: bytes, parse_addresses: AddressParser, *, now: datetime | None, restamp_date: bool,
             origin: str, envelope: Envelope | None = None) -> ComposedMessage:
    raw = _BARE_LF.sub(b"\r\n", raw)
    fields, body = split_message(raw)
    what = "draft" if origin == "draft" else "message"

    def addresses(name: str) -> list[Mailbox]:
        return [m for field in fields if field.name == name for m in parse_addresses(field.value)]

    senders = addresses("from")
    if not senders:
        raise ComposeError(f"{origin}.from", f"the {what} has no From address")
    sender = senders[0]
    bcc = addresses("bcc")
    recipients = unique_mailboxes([*addresses("to"), *addresses("cc"), *bcc])
    if not recipients and envelope is None:
        raise ComposeError(f"{origin}.to", f"the {what} has no recipients (To, Cc or Bcc)")
    smtputf8 = any(m.needs_smtputf8 for m in (sender, *recipients))

    body = body or b"\r\n"  # a message of headers only still needs the blank line
    replaced = ("bcc", "date") if restamp_date else ("bcc",)
    kept = [f.raw for f in fields if f.name not in replaced]
    stamp = restamp_date or not any(f.name == "date" for f in fields)
    date_lines = [f"Date: {format_datetime(now or datetime.now(UTC))}\r\n".encode("ascii")] if stamp else []
    ids = [f.value.decode("utf-8", "replace") for f in fields if f.name == "message-id"]
    try:
        message_id = ids[0] if ids else new_message_id(sender)
        envelope = envelope or Envelope(mail_from=sender.envelope_address(smtputf8=smtputf8),
                                        recipients=tuple(m.envelope_address(smtputf8=smtputf8) for m in recipients),
                                        smtputf8=smtputf8)
    except AddressEncodingError as exc:  # an address whose domain has no IDNA 2008 form
        raise ComposeError(f"{origin}.to", str(exc)) from None
    added = date_lines + ([] if ids else [f"Message-ID: {message_id}\r\n".encode("ascii")])
    bcc_lines = b"".join(f.raw for f in fields if f.name == "bcc")
    # New fields go first, as trace fields do; order carries no meaning for the others.
    sent = b"".join(added + kept) + body
    return ComposedMessage(raw=sent, message_id=message_id, envelope=envelope, bcc_header=bcc_lines)
