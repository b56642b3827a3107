"""The listing fields of a message (``messageNew`` data) from one FETCH of its envelope and structure.

Input is imapclient's parsed FETCH item (``ENVELOPE``, ``BODYSTRUCTURE``, ``FLAGS``,
``RFC822.SIZE``, ``INTERNALDATE``, Gmail's ``X-GM-*``); output is the EmailEngine-style
listing entry documented in docs/events.md. Headers are decoded (RFC 2047) here, so
the event carries text, never encoded words.

The body structure is walked only for a summary: which parts are attachments (with
their size, type, filename, content id) and how large the plain and HTML texts are.
Part numbers follow RFC 3501 (``1``, ``1.2``, ...); attachment ids are
``<message id>.<part>`` and the text id is ``<message id>.text``, so a later call can
fetch exactly that part.
"""

from __future__ import annotations

import email.header
import email.utils
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

LISTING_FETCH_ITEMS = ("UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE")
GMAIL_FETCH_ITEMS = ("X-GM-LABELS", "X-GM-MSGID", "X-GM-THRID")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    raw = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    try:
        return str(email.header.make_header(email.header.decode_header(raw)))
    except (ValueError, LookupError):
        return raw


def _addresses(values: Any) -> list[dict[str, str]]:
    result = []
    for address in values or ():
        if address.mailbox is None:
            continue  # RFC 3501 group syntax markers
        mailbox = _text(address.mailbox) or ""
        host = _text(address.host)
        entry = {"address": f"{mailbox}@{host}" if host else mailbox}
        if (name := _text(address.name)) is not None:
            entry["name"] = name
        result.append(entry)
    return result


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _params(raw: Any) -> dict[str, str]:
    if not isinstance(raw, tuple):
        return {}
    return {str(_text(raw[i])).lower(): str(_text(raw[i + 1])) for i in range(0, len(raw) - 1, 2)}


def _leaves(structure: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(part number, single-part body) for every leaf of a BODYSTRUCTURE."""
    if structure.is_multipart:
        for index, child in enumerate(structure[0], start=1):
            yield from _leaves(child, f"{prefix}{index}" if not prefix else f"{prefix}.{index}")
    else:
        yield prefix or "1", structure


def body_summary(structure: Any, message_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(attachments, text) summaries of a BODYSTRUCTURE."""
    attachments: list[dict[str, Any]] = []
    sizes: dict[str, int] = {}
    for part, leaf in _leaves(structure):
        content_type = f"{_text(leaf[0])}/{_text(leaf[1])}".lower()
        size = leaf[6] if len(leaf) > 6 and isinstance(leaf[6], int) else 0
        extension = leaf[8:] if content_type.startswith("text/") else leaf[7:]
        disposition = extension[1] if len(extension) > 1 and isinstance(extension[1], tuple) else None
        disposition_type = (_text(disposition[0]) or "").lower() if disposition else ""
        filename = _params(disposition[1]).get("filename") if disposition else None
        filename = filename or _params(leaf[2]).get("name")
        if content_type in ("text/plain", "text/html") and disposition_type != "attachment" and not filename:
            key = "plain" if content_type == "text/plain" else "html"
            sizes[key] = sizes.get(key, 0) + size
            continue
        entry: dict[str, Any] = {"id": f"{message_id}.{part}", "contentType": content_type, "encodedSize": size,
                                 "embedded": bool(leaf[3]), "inline": disposition_type == "inline"}
        if filename:
            entry["filename"] = filename
        if leaf[3]:
            entry["contentId"] = _text(leaf[3])
        attachments.append(entry)
    return attachments, {"id": f"{message_id}.text", "encodedSize": sizes}


def message_listing(item: dict[bytes, Any], message_id: str) -> dict[str, Any]:
    """The listing fields of one fetched message (``id``/``uid`` are added by the caller)."""
    envelope = item.get(b"ENVELOPE")
    flags = sorted(f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f) for f in item.get(b"FLAGS", ()))
    listing: dict[str, Any] = {
        "date": _iso(envelope.date if envelope and envelope.date else item.get(b"INTERNALDATE")),
        "internalDate": _iso(item.get(b"INTERNALDATE")),
        "flags": flags, "unseen": "\\Seen" not in flags, "flagged": "\\Flagged" in flags,
        "size": item.get(b"RFC822.SIZE"),
    }
    if envelope is not None:
        senders = _addresses(envelope.from_)
        listing.update({
            "subject": _text(envelope.subject) or "", "messageId": _text(envelope.message_id),
            "inReplyTo": _text(envelope.in_reply_to), "to": _addresses(envelope.to), "cc": _addresses(envelope.cc),
            "bcc": _addresses(envelope.bcc), "replyTo": _addresses(envelope.reply_to),
        })
        if senders:
            listing["from"] = senders[0]
    if b"X-GM-LABELS" in item:
        listing["labels"] = sorted(_text(v) or "" for v in item[b"X-GM-LABELS"])
        listing["emailId"] = str(item.get(b"X-GM-MSGID"))
        listing["threadId"] = str(item.get(b"X-GM-THRID"))
    if b"BODYSTRUCTURE" in item:
        listing["attachments"], listing["text"] = body_summary(item[b"BODYSTRUCTURE"], message_id)
    return {key: value for key, value in listing.items() if value is not None}
