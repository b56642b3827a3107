"""The decoded header fields of a message: one decoder for a whole message and a header block.

:func:`chalicelib.mime.decode.parse_message` (a whole message) and the mail API's listing
(only ``BODY.PEEK[HEADER.FIELDS (...)]`` of each message) both build :class:`HeaderFields`
here, so a listing entry and the full message can never disagree on a subject or address.

Invariants: never raises on malformed headers (the decoders in :mod:`chalicelib.mime.headers`
fall back); addresses are ``{"name": str, "address": str}`` with ``name`` ``""`` when absent;
``hint`` is the charset tried for raw 8-bit header bytes (the first declared text charset).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message

from chalicelib.mime.headers import (
    decode_header_value,
    parse_address_list,
    parse_date,
    parse_message_id,
    parse_references,
)


@dataclass(frozen=True, slots=True)
class HeaderFields:
    subject: str | None
    from_: dict[str, str] | None
    sender: dict[str, str] | None
    reply_to: list[dict[str, str]]
    to: list[dict[str, str]]
    cc: list[dict[str, str]]
    bcc: list[dict[str, str]]
    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    date: datetime | None
    headers: dict[str, list[str]] = field(default_factory=dict)  # lowercased name -> decoded values, in order


@functools.lru_cache(maxsize=4096)
def _address_list(value: str, hint: str | None) -> tuple[tuple[str, str], ...]:
    """:func:`parse_address_list`, remembered: the same To/Cc line (the mailbox owner) and the
    same senders come back on most messages of a mailbox, and parsing is pure."""
    return tuple((found.get("name", ""), found["address"]) for found in
                 parse_address_list(value, fallback_charset=hint))


def decode_header_fields(message: Message, hint: str | None, *, all_headers: bool = True) -> HeaderFields:
    """The fields of ``message``'s headers; without ``all_headers``, ``headers`` stays empty and
    References are not parsed (a listing shows neither and does not pay for them)."""

    def addresses(name: str) -> list[dict[str, str]]:
        return [{"name": found_name, "address": address} for value in message.get_all(name, [])
                for found_name, address in _address_list(value, hint)]

    headers: dict[str, list[str]] = {}
    if all_headers:
        for name, value in message.items():
            headers.setdefault(name.strip().lower(), []).append(decode_header_value(value, fallback_charset=hint))
    subject = message.get("subject")
    return HeaderFields(
        subject=decode_header_value(subject, fallback_charset=hint) if subject is not None else None,
        from_=next(iter(addresses("from")), None), sender=next(iter(addresses("sender")), None),
        reply_to=addresses("reply-to"), to=addresses("to"), cc=addresses("cc"), bcc=addresses("bcc"),
        message_id=parse_message_id(message.get("message-id")),
        in_reply_to=parse_message_id(message.get("in-reply-to")),
        references=parse_references(" ".join(message.get_all("references", []))) if all_headers else [],
        date=parse_date(message.get("date")), headers=headers)
