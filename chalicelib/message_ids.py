"""Opaque, stateless ids for messages, attachments and text parts.

Any Lambda must resolve an id without a lookup table, so each id *is* the address of its
object, packed and base64url-encoded (no padding; safe in URL paths)::

    byte 0     version (1)
    byte 1     kind: m (message) | a (attachment) | t (text)
    varint     UIDVALIDITY of the mailbox
    varint     UID
    varint+N   mailbox path, UTF-8
    rest       attachment: IMAP section ("2.1"); text: sections joined by ","

The codec is pure (no I/O, no key), so the watcher's change detection
(:mod:`chalicelib.sync.reconcile`) puts the very ids the API resolves into its events.
Page cursors of message listings are not ids: they carry server state the next request
acts on, so they are sealed (:mod:`chalicelib.services.cursors`).

A message id stays valid while the message stays in its mailbox and the mailbox keeps
its UIDVALIDITY (RFC 3501 2.3.1.1): the pair names one message forever. After a move the
message has a new id (the move answer returns it). A stale id (UID expunged, or
UIDVALIDITY changed) is well-formed and resolves to 404 ``MessageNotFound``; anything that
does not decode is 400 ``InvalidMessageId`` (``InvalidAttachmentId``, ``InvalidTextId``).

Ids are not secrets and not signed: holding an id grants nothing the caller's token does
not already grant over the account.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from chalicelib.errors import InvalidIdError
from chalicelib.varint import read_varint, write_varint

VERSION = 1
KIND_MESSAGE, KIND_ATTACHMENT, KIND_TEXT = b"m", b"a", b"t"
MAX_ID_LENGTH = 2048
_ID_ALPHABET = re.compile(r"^[A-Za-z0-9_-]+$")
_SECTION = re.compile(r"^(?:[1-9][0-9]*)(?:\.[1-9][0-9]*)*$")


@dataclass(frozen=True)
class MessageRef:
    path: str
    uid_validity: int
    uid: int


@dataclass(frozen=True)
class AttachmentRef:
    message: MessageRef
    section: str  # IMAP body section, "2" or "1.2.3"


@dataclass(frozen=True)
class TextRef:
    message: MessageRef
    sections: tuple[str, ...]


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("negative")
    out = bytearray()
    write_varint(out, value)
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def varint(self) -> int:
        value, self.offset = read_varint(self.data, self.offset)
        if value >= 2**64:
            raise ValueError("varint too large")
        return value

    def take(self, length: int) -> bytes:
        if self.offset + length > len(self.data):
            raise ValueError("truncated")
        chunk = self.data[self.offset:self.offset + length]
        self.offset += length
        return chunk

    def rest(self) -> bytes:
        chunk = self.data[self.offset:]
        self.offset = len(self.data)
        return chunk


def _encode(kind: bytes, body: bytes) -> str:
    return base64.urlsafe_b64encode(bytes([VERSION]) + kind + body).rstrip(b"=").decode("ascii")


def _decode(value: str, kind: bytes, code: str, what: str) -> _Reader:
    if not value or len(value) > MAX_ID_LENGTH or not _ID_ALPHABET.match(value):
        raise InvalidIdError(f"{what} is malformed", code=code, details={"id": value[:100]})
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise InvalidIdError(f"{what} is malformed", code=code, details={"id": value[:100]}) from None
    if len(raw) < 2 or raw[0] != VERSION or raw[1:2] != kind:
        raise InvalidIdError(f"{what} is malformed or of another kind", code=code, details={"id": value[:100]})
    return _Reader(raw[2:])


def _message_body(ref: MessageRef) -> bytes:
    path = ref.path.encode("utf-8")
    return _varint(ref.uid_validity) + _varint(ref.uid) + _varint(len(path)) + path


def _read_message(reader: _Reader) -> MessageRef:
    uid_validity, uid = reader.varint(), reader.varint()
    path = reader.take(reader.varint()).decode("utf-8")
    if uid < 1 or not path:  # UIDVALIDITY 0: a server that sends none (non-compliant, but seen)
        raise ValueError("out of range")
    return MessageRef(path, uid_validity, uid)


def encode_message_id(ref: MessageRef) -> str:
    return _encode(KIND_MESSAGE, _message_body(ref))


def decode_message_id(value: str) -> MessageRef:
    reader = _decode(value, KIND_MESSAGE, "InvalidMessageId", "message id")
    try:
        ref = _read_message(reader)
        if reader.rest():
            raise ValueError("trailing bytes")
    except (ValueError, UnicodeDecodeError):
        raise InvalidIdError("message id is malformed", details={"id": value[:100]}) from None
    return ref


def encode_attachment_id(ref: AttachmentRef) -> str:
    return _encode(KIND_ATTACHMENT, _message_body(ref.message) + ref.section.encode("ascii"))


def decode_attachment_id(value: str) -> AttachmentRef:
    reader = _decode(value, KIND_ATTACHMENT, "InvalidAttachmentId", "attachment id")
    try:
        message = _read_message(reader)
        section = reader.rest().decode("ascii")
        if not _SECTION.match(section):
            raise ValueError("bad section")
    except (ValueError, UnicodeDecodeError):
        raise InvalidIdError("attachment id is malformed", code="InvalidAttachmentId",
                             details={"id": value[:100]}) from None
    return AttachmentRef(message, section)


def encode_text_id(ref: TextRef) -> str:
    return _encode(KIND_TEXT, _message_body(ref.message) + ",".join(ref.sections).encode("ascii"))


def decode_text_id(value: str) -> TextRef:
    reader = _decode(value, KIND_TEXT, "InvalidTextId", "text id")
    try:
        message = _read_message(reader)
        rest = reader.rest().decode("ascii")
        sections = tuple(rest.split(",")) if rest else ()
        if any(not _SECTION.match(section) for section in sections):
            raise ValueError("bad section")
    except (ValueError, UnicodeDecodeError):
        raise InvalidIdError("text id is malformed", code="InvalidTextId", details={"id": value[:100]}) from None
    return TextRef(message, sections)
