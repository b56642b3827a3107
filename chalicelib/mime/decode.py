"""Raw RFC 822 bytes -> a decoded message: headers, addresses, text, attachments, defects.

:func:`parse_message` is what the API uses to show a message; :func:`extract_part` cuts one
part out of a full message; :func:`decode_part_payload`, :func:`decode_transfer_encoding` and
:func:`join_text_parts` decode parts the API fetched from IMAP one by one, with the same result.

- Structure: :mod:`.tree` parses the bytes (stdlib ``email``, numbered like IMAP) and
  :func:`~chalicelib.mime.classify.summarize_parts` picks attachments and text parts: the
  same function that reads Dovecot's BODYSTRUCTURE, so part numbers are interchangeable.
- Headers: every value goes through :mod:`.headers` (RFC 2047, raw 8-bit text, tolerant
  address lists); raw 8-bit headers use the body's charset as a hint.
- Body text: transfer-decoded (:mod:`.transfer`), then charset-decoded (:mod:`.charsets`; an
  HTML part that declares no charset, or only ``us-ascii``, is decoded with its
  ``<meta charset>`` first); line ends become ``\n``; several parts are joined with a line
  break between them. ``max_text_bytes`` bounds the UTF-8 size of each of ``text_plain``
  and ``text_html``; ``has_more`` says something was cut. An HTML-only message has
  ``text_plain = None`` (turning HTML into text is :func:`html_to_text`'s job, for sending).

Failure modes: nothing raises on malformed input. What was wrong is listed in ``defects`` as
``"<part>: <what>"`` (the stdlib's defect names, charset fallbacks, unknown transfer
encodings). Invalid *arguments* raise: ``TypeError`` for non-bytes input, ``ValueError`` for a
negative ``max_text_bytes`` or a malformed section number.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from chalicelib.mime.charsets import DecodedText, charset_codecs, decode_bytes
from chalicelib.mime.classify import summarize_parts
from chalicelib.mime.header_fields import HeaderFields, decode_header_fields
from chalicelib.mime.htmltext import html_to_text
from chalicelib.mime.model import AttachmentInfo, TextPartRef, TextParts
from chalicelib.mime.transfer import decode_transfer_encoding
from chalicelib.mime.tree import PartTree, parse_part_tree

__all__ = ["ExtractedPart", "ParsedMessage", "decode_part_payload", "decode_transfer_encoding", "extract_part",
           "html_to_text", "join_text_parts", "parse_message"]

_SECTION = re.compile(r"[1-9][0-9]*(\.[1-9][0-9]*)*")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_META_SNIFF_BYTES = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedMessage(HeaderFields):
    """A decoded message: its :class:`HeaderFields` (``headers`` holds every header) and body.
    ``date`` is timezone-aware; ``defects`` lists what was wrong."""

    text_plain: str | None
    text_html: str | None
    has_more: bool
    attachments: list[AttachmentInfo]
    text_parts: TextParts
    defects: list[str] = field(default_factory=list)


HEADER_FIELD_NAMES = tuple(f.name for f in fields(HeaderFields))


@dataclass(frozen=True, slots=True)
class ExtractedPart:
    """One part's content, transfer-decoded (bytes: attachments are not charset-decoded)."""

    content: bytes                              # transfer-decoded
    content_type: str
    filename: str | None


def decode_part_payload(payload: bytes, encoding: str | None, charset: str | None, *,
                        content_type: str | None = None, hint: str | None = None) -> str:
    """A text part's body as fetched from IMAP (still transfer-encoded) -> text with ``\\n`` line ends."""
    return _decode_text_payload(payload, encoding, charset, content_type=content_type, hint=hint).text


def _decode_text_payload(payload: bytes, encoding: str | None, charset: str | None, *,
                         content_type: str | None, hint: str | None = None) -> DecodedText:
    data = decode_transfer_encoding(payload, encoding)
    declared = charset
    if content_type == "text/html" and not charset_codecs(charset):
        sniffed = _META_CHARSET.search(data[:_META_SNIFF_BYTES])
        declared = sniffed.group(1).decode("ascii") if sniffed else charset
    decoded = decode_bytes(data, declared, hint=hint)
    text = decoded.text.replace("\r\n", "\n")
    return DecodedText(text, decoded.charset, decoded.problem)


def join_text_parts(texts: Sequence[str], max_bytes: int | None = None) -> tuple[str | None, bool]:
    """Several decoded text parts -> one text (a line break between parts), cut at ``max_bytes``.

    Returns ``(text, cut)``; ``(None, False)`` when there is no part. The API uses this for
    parts it fetched one by one, so the result equals :func:`parse_message`'s.
    """
    if max_bytes is not None and max_bytes < 0:
        raise ValueError("max_bytes must be >= 0")
    if not texts:
        return None, False
    pieces = [texts[0]]
    for text in texts[1:]:
        if pieces[-1] and not pieces[-1].endswith("\n"):
            pieces.append("\n")
        pieces.append(text)
    joined = "".join(pieces)
    if max_bytes is None:
        return joined, False
    encoded = joined.encode("utf-8")
    if len(encoded) <= max_bytes:
        return joined, False
    return encoded[:max_bytes].decode("utf-8", "ignore"), True


def parse_message(raw: bytes, *, max_text_bytes: int | None = None) -> ParsedMessage:
    """Decode a whole message (see the module docstring); never raises on malformed input."""
    _check_raw(raw)
    if max_text_bytes is not None and max_text_bytes < 0:
        raise ValueError("max_text_bytes must be >= 0")
    tree = parse_part_tree(bytes(raw))
    message, defects = tree.message, list(tree.defects)
    structure = summarize_parts(tree.root)
    body_charset = next((ref.charset for ref in structure.text.plain + structure.text.html
                         if charset_codecs(ref.charset)), None)
    text_plain, plain_cut = _body_text(tree, structure.text.plain, max_text_bytes, body_charset, defects)
    text_html, html_cut = _body_text(tree, structure.text.html, max_text_bytes, body_charset, defects)

    header_fields = decode_header_fields(message, body_charset, all_headers=True)
    return ParsedMessage(
        **{name: getattr(header_fields, name) for name in HEADER_FIELD_NAMES},
        text_plain=text_plain,
        text_html=text_html,
        has_more=plain_cut or html_cut,
        attachments=structure.attachments,
        text_parts=structure.text,
        defects=defects,
    )


def _body_text(tree: PartTree, refs: list[TextPartRef], max_bytes: int | None, hint: str | None,
               defects: list[str]) -> tuple[str | None, bool]:
    texts: list[str] = []
    decoded_length = 0  # in characters, which never exceed UTF-8 bytes
    for ref in refs:
        if max_bytes is not None and decoded_length > max_bytes:
            break  # what is decoded already exceeds the limit: the rest would be cut anyway
        decoded = _decode_text_payload(tree.payloads[ref.part], ref.encoding, ref.charset,
                                       content_type=ref.content_type, hint=hint)
        if decoded.problem:
            defects.append(f"{ref.part}: {decoded.problem}")
        texts.append(decoded.text)
        decoded_length += len(decoded.text)
    return join_text_parts(texts, max_bytes)


def _check_raw(raw: object) -> None:
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise TypeError(f"raw message must be bytes, not {type(raw).__name__}")


def extract_part(raw: bytes, part: str) -> ExtractedPart | None:
    """The transfer-decoded content of IMAP section ``part`` of a full message; None if absent.

    Sections of multiparts themselves are not addressable here (they have no single content).
    A ``message/rfc822`` part gives the encapsulated message's bytes.
    """
    _check_raw(raw)
    if not isinstance(part, str) or not _SECTION.fullmatch(part):
        raise ValueError(f"not an IMAP section number: {part!r}")
    tree = parse_part_tree(bytes(raw))
    node = tree.nodes.get(part)
    if node is None:
        return None
    return ExtractedPart(content=decode_transfer_encoding(tree.payloads[part], node.encoding),
                         content_type=node.content_type, filename=node.filename)
