"""What the API shows of a message, built from what IMAP returned (pure; no I/O).

A listing entry needs no body: the header fields come from ``BODY.PEEK[HEADER.FIELDS
(...)]``, the attachments and text sizes from BODYSTRUCTURE via
:func:`chalicelib.mime.structure.parse_bodystructure`. Header fields are decoded by
:func:`chalicelib.mime.header_fields.decode_header_fields`, the function
:func:`chalicelib.mime.decode.parse_message` uses for a whole message, with the same
decoding hint for raw 8-bit headers (the first text part's declared charset, here read
from BODYSTRUCTURE). :func:`decode_header_block` does only that, on the header block: a
full ``parse_message`` of each entry's headers cost 0.3 ms (6 ms per page of 20), this
costs 0.1 ms. The corpus test checks that both agree.

Decoded entries are kept per process (LRU of 4,096): a message's content never changes
while it keeps its UID, so a page listed again is built from its fresh flags alone.

Ids: see :mod:`chalicelib.message_ids`. Dates are shown in UTC; a message
without a usable Date header shows its arrival time (INTERNALDATE).
"""

from __future__ import annotations

from datetime import UTC, datetime

from chalicelib.imap.messages import MessageSummary
from chalicelib.message_ids import (
    AttachmentRef,
    MessageRef,
    TextRef,
    encode_attachment_id,
    encode_message_id,
    encode_text_id,
)
from chalicelib.mime.charsets import charset_codecs
from chalicelib.mime.header_fields import HeaderFields, decode_header_fields
from chalicelib.mime.model import MessageStructure, TextPartRef
from chalicelib.mime.structure import parse_bodystructure
from chalicelib.mime.tree import parse_headers_only
from chalicelib.schemas.messages import (
    AddressOut,
    AttachmentOut,
    MessageEntry,
    TextSizes,
    TextSummary,
)
from chalicelib.ttlcache import TtlCache

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Decoded listing entries of recently listed messages (immutable but for their flags):
# about 1-2 KB each, so a warm process spends at most a few MB on them.
DECODED_ENTRY_SECONDS = 3600
_decoded_entries = TtlCache[MessageEntry](max_entries=4096)


def _address(value: dict[str, str] | None) -> AddressOut | None:
    if not value or not value.get("address"):
        return None
    return AddressOut(name=value.get("name") or None, address=value["address"])


def _addresses(values: list[dict[str, str]]) -> list[AddressOut]:
    return [address for address in (_address(value) for value in values) if address is not None]


def text_refs(structure: MessageStructure, text_type: str) -> dict[str, list[TextPartRef]]:
    """The text parts to fetch for ``textType`` (plain, html or *)."""
    kinds = ("plain", "html") if text_type == "*" else (text_type,)
    return {kind: list(getattr(structure.text, kind)) for kind in kinds}


def text_summary(ref: MessageRef, structure: MessageStructure) -> TextSummary:
    sections = tuple(part.part for part in structure.text.plain + structure.text.html)
    return TextSummary(id=encode_text_id(TextRef(ref, sections)),
                       encodedSize=TextSizes(plain=structure.text.plain_encoded_size,
                                             html=structure.text.html_encoded_size))


def body_charset(structure: MessageStructure) -> str | None:
    """The first usable declared text charset: the hint for raw 8-bit headers and undeclared parts."""
    return next((ref.charset for ref in structure.text.plain + structure.text.html if charset_codecs(ref.charset)),
                None)


def decode_header_block(raw: bytes, hint: str | None, *, all_headers: bool = False) -> HeaderFields:
    """The listing fields of a header block; ``all_headers`` also decodes every header."""
    return decode_header_fields(parse_headers_only(raw), hint, all_headers=all_headers)


def mutable_fields(summary: MessageSummary) -> dict:
    """The fields that change while a message keeps its UID: flags and Gmail labels."""
    flags = list(summary.flags)
    lowered = {flag.lower() for flag in flags}
    return {"flags": flags, "labels": list(summary.labels) if summary.labels is not None else None,
            "unseen": "\\seen" not in lowered, "flagged": "\\flagged" in lowered,
            "answered": "\\answered" in lowered, "draft": "\\draft" in lowered}


def entry_fields(summary: MessageSummary, path: str, uid_validity: int, *,
                 all_headers: bool = False) -> tuple[dict, HeaderFields]:
    """Keyword arguments of :class:`MessageEntry` (shared by the listing and the full message)."""
    ref = MessageRef(path, uid_validity, summary.uid)
    structure = parse_bodystructure(summary.bodystructure)
    parsed = decode_header_block(summary.headers, body_charset(structure), all_headers=all_headers)
    date = parsed.date or summary.internal_date or EPOCH
    fields = {
        "id": encode_message_id(ref), "uid": summary.uid, "emailId": summary.email_id,
        "threadId": summary.thread_id, "path": path, "date": date.astimezone(UTC),
        "internalDate": summary.internal_date.astimezone(UTC) if summary.internal_date else None,
        "size": summary.size, **mutable_fields(summary),
        "subject": parsed.subject or "", "from_": _address(parsed.from_), "sender": _address(parsed.sender),
        "replyTo": _addresses(parsed.reply_to) or None, "to": _addresses(parsed.to), "cc": _addresses(parsed.cc),
        "bcc": _addresses(parsed.bcc) or None, "messageId": parsed.message_id, "inReplyTo": parsed.in_reply_to,
        "attachments": [
            AttachmentOut(id=encode_attachment_id(AttachmentRef(ref, info.part)), filename=info.filename,
                          contentType=info.content_type, encodedSize=info.encoded_size, embedded=info.embedded,
                          inline=info.inline, contentId=info.content_id)
            for info in structure.attachments],
        "text": text_summary(ref, structure), "preview": summary.preview,
    }
    return fields, parsed


def listing_entry(summary: MessageSummary, path: str, uid_validity: int, *,
                  server_key: str | None = None) -> MessageEntry:
    """A listing entry. With ``server_key`` (which account on which server), the decoded part
    is remembered: a message's content never changes while it keeps its UID and UIDVALIDITY
    (RFC 3501 2.3.1.1), so a page seen again costs only its flags."""
    if server_key is None:
        return MessageEntry(**entry_fields(summary, path, uid_validity)[0])
    cached = _decoded_entries.get_or_load((server_key, path, uid_validity, summary.uid),
                                          lambda: MessageEntry(**entry_fields(summary, path, uid_validity)[0]),
                                          DECODED_ENTRY_SECONDS)
    return cached.model_copy(update=mutable_fields(summary))
