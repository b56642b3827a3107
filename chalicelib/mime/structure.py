"""IMAP BODYSTRUCTURE (as imapclient 4.x parses it) -> :class:`~chalicelib.mime.model.MessageStructure`.

Lets the API list a message's attachments and text parts from ``FETCH BODYSTRUCTURE`` alone,
without downloading the message. The input is imapclient's parse of RFC 3501's ``body``
production, bytes/ints/None in nested tuples::

    basic:     (type, subtype, params, id, description, encoding, size, [md5, disposition, language, location])
    text/*:    (type, subtype, params, id, description, encoding, size, lines, [md5, disposition, …])
    message/rfc822:
               (type, subtype, params, id, description, encoding, size, envelope, body, lines, [md5, disposition, …])
    multipart: BodyData([child, child, …], subtype, [params, disposition, language, location])

imapclient wraps only the *top-level* body and the direct children of multiparts in
``BodyData`` (whose ``is_multipart`` means "element 0 is a list"). The body nested inside a
message/rfc822 part stays a plain tuple whose multipart form starts with the child tuples
themselves; :func:`_split_multipart` accepts both shapes.

Tolerated server quirks: sizes sent as strings, a disposition sent as a bare string instead
of ``(type params)`` (some Exchange versions), NIL where a string is expected, missing
extension data (a BODY instead of BODYSTRUCTURE response), and unknown trailing fields.
Malformed input yields an empty structure for the broken branch, never an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib.mime.classify import ENCAPSULATED_MESSAGE_TYPES, summarize_parts
from chalicelib.mime.encodedwords import decode_header_value
from chalicelib.mime.model import (
    DEFAULT_TRANSFER_ENCODING,
    MessageStructure,
    PartNode,
    child_section,
    encapsulated_section,
    with_default_charset,
)
from chalicelib.mime.params import parse_content_id, resolve_params
from chalicelib.mime.transfer import normalize_transfer_encoding

# Index of the disposition in a non-multipart body: after md5, which follows the
# type-specific fields (lines for text/*, envelope + body + lines for message/rfc822).
_DISPOSITION_INDEX_TEXT = 9
_DISPOSITION_INDEX_MESSAGE = 11
_DISPOSITION_INDEX_BASIC = 8
_MESSAGE_BODY_INDEX = 8


def parse_bodystructure(bodystructure: Any) -> MessageStructure:
    """Attachments and text parts of a message, from its BODYSTRUCTURE as imapclient returns it."""
    return summarize_parts(bodystructure_tree(bodystructure))


def bodystructure_tree(bodystructure: Any) -> PartNode:
    """The neutral part tree of a BODYSTRUCTURE (the top-level body; sections per RFC 3501)."""
    return _node(bodystructure, encapsulated_section("", _is_multipart(bodystructure)))


def _is_multipart(body: Any) -> bool:
    return isinstance(body, Sequence) and not isinstance(body, bytes | str) and len(body) > 0 \
        and isinstance(body[0], list | tuple)


def _split_multipart(body: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """``(children, extension fields starting at subtype)`` for both of imapclient's shapes."""
    if isinstance(body[0], list):
        return list(body[0]), list(body[1:])
    children: list[Any] = []
    for index, item in enumerate(body):
        if not isinstance(item, list | tuple):
            return children, list(body[index:])
        children.append(item)
    return children, []


def _node(body: Any, section: str) -> PartNode:
    if not isinstance(body, Sequence) or isinstance(body, bytes | str) or not body:
        return PartNode(section=section, content_type="application/octet-stream", params={})
    if _is_multipart(body):
        return _multipart_node(body, section)
    return _single_node(list(body), section)


def _multipart_node(body: Sequence[Any], section: str) -> PartNode:
    children, rest = _split_multipart(body)
    subtype = _text(_at(rest, 0)) or "mixed"
    disposition, disposition_params = _disposition(_at(rest, 2))
    return PartNode(
        section=section,
        content_type=f"multipart/{subtype}",
        params=_params(_at(rest, 1)),
        disposition=disposition,
        disposition_params=disposition_params,
        children=tuple(_node(child, child_section(section, index)) for index, child in enumerate(children, 1)),
    )


def _single_node(body: list[Any], section: str) -> PartNode:
    content_type = f"{_text(_at(body, 0)) or 'text'}/{_text(_at(body, 1)) or 'plain'}"
    children: tuple[PartNode, ...] = ()
    if content_type in ENCAPSULATED_MESSAGE_TYPES and isinstance(_at(body, _MESSAGE_BODY_INDEX), list | tuple):
        inner = body[_MESSAGE_BODY_INDEX]
        children = (_node(inner, encapsulated_section(section, _is_multipart(inner))),)
        disposition_index = _DISPOSITION_INDEX_MESSAGE
    elif content_type.startswith("text/"):
        disposition_index = _DISPOSITION_INDEX_TEXT
    else:
        disposition_index = _DISPOSITION_INDEX_BASIC
    disposition, disposition_params = _disposition(_at(body, disposition_index))
    return PartNode(
        section=section,
        content_type=content_type,
        params=with_default_charset(content_type, _params(_at(body, 2))),
        disposition=disposition,
        disposition_params=disposition_params,
        content_id=parse_content_id(_at(body, 3)),
        encoding=normalize_transfer_encoding(_text(_at(body, 5)) or None) or DEFAULT_TRANSFER_ENCODING,
        encoded_size=_number(_at(body, 6)),
        children=children,
    )


def _at(items: Sequence[Any], index: int) -> Any:
    return items[index] if index < len(items) else None


def _text(value: Any) -> str:
    """A lowercased token (type, subtype, encoding, disposition)."""
    if isinstance(value, bytes):
        return value.decode("latin-1").strip().lower()
    if isinstance(value, str):
        return value.strip().lower()
    return ""


def _number(value: Any) -> int:
    if isinstance(value, int):
        return max(value, 0)
    try:
        return max(int(_text(value)), 0)
    except ValueError:
        return 0


def _params(value: Any) -> dict[str, str]:
    if not isinstance(value, list | tuple):
        return {}
    flat = [item if isinstance(item, bytes | str) else b"" for item in value]
    return resolve_params(zip(flat[0::2], flat[1::2], strict=False))


def _disposition(value: Any) -> tuple[str | None, dict[str, str]]:
    if isinstance(value, bytes | str):
        return decode_header_value(value).lower() or None, {}
    if not isinstance(value, list | tuple) or not value:
        return None, {}
    return _text(value[0]) or None, _params(_at(value, 1))
