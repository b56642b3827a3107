"""Raw message bytes -> :class:`~chalicelib.mime.model.PartNode` tree plus each part's exact body bytes.

The ``email`` package does the MIME parsing; this module makes its result look like what
an IMAP server serves, section by section (checked against Dovecot by
``tests/integration/test_mime_against_dovecot.py``):

- every addressable part's body bytes are kept *as on the wire* (``BODY[<section>]``), with
  8-bit bytes intact: we read the parser's stored payload, never ``get_payload()``, which
  replaces 8-bit bytes or applies its own transfer decoding;
- the stdlib parser descends into *every* ``message/*`` body (and splits delivery-status
  reports into header blocks), losing their bytes, while IMAP servers only descend into
  ``message/rfc822``. During parsing, :class:`_ParsedMessage` therefore reports ``message/*``
  parts as opaque; ``message/rfc822`` bodies are then parsed from their exact bytes, which
  also numbers their parts the IMAP way (``2.1``, ``2.2``…);
- the last part of a multipart cut off before its closing boundary runs to the end of the
  message: the stdlib drops its final line break (as if a boundary followed), servers keep it;
- a multipart the stdlib cannot split (no ``boundary`` parameter, no boundary line) gets one
  empty ``text/plain`` part ``N.1``, as Dovecot reports it;
- a missing charset on ``text/*`` is ``us-ascii`` and a missing transfer encoding ``7bit``
  (RFC 2045's defaults, which servers put in BODYSTRUCTURE).

Known divergences from Dovecot, on malformed input only: Dovecot accepts a line that merely
*starts* with a boundary (``--bXYZ``) as that boundary and copes with a nested multipart that
reuses its parent's boundary; the stdlib follows RFC 2046 strictly. Unquoted parameter values
with spaces (``name=My File.pdf``) are read whole here and cut at the space by Dovecot.

Defects found by the parser are collected as ``"<section>: <DefectName>"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.errors import CloseBoundaryNotFoundDefect
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32

from chalicelib.mime.model import (
    DEFAULT_TEXT_CHARSET,
    DEFAULT_TRANSFER_ENCODING,
    PartNode,
    child_section,
    encapsulated_section,
    with_default_charset,
)
from chalicelib.mime.params import parse_content_id, resolve_params, split_header_params
from chalicelib.mime.transfer import KNOWN_ENCODINGS, normalize_transfer_encoding

# Deeper nesting than this is an attack or a loop, not mail: such parts are left unparsed.
MAX_NESTING_DEPTH = 48
ENCAPSULATED_TYPE = "message/rfc822"
_OPAQUE_DURING_PARSING = "application/octet-stream"
_LINE_ENDS = (b"\r\n", b"\n", b"\r")
_UNPARSED = PartNode(section="", content_type="multipart/mixed", params={})


class _RawHeaderPolicy(Compat32):
    """compat32 that returns header values as stored: no ``Header`` objects for 8-bit values."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


POLICY = _RawHeaderPolicy(linesep="\r\n", max_line_length=None, raise_on_defect=False)


class _ParsedMessage(Message):
    """What the stdlib parser builds; it sees ``message/*`` parts as opaque (see the module docstring)."""

    def get_content_type(self) -> str:
        real = super().get_content_type()
        return _OPAQUE_DURING_PARSING if real.startswith("message/") else real


def content_type_of(message: Message) -> str:
    """The part's real content type (the parser-facing override hides ``message/*``)."""
    return Message.get_content_type(message)


def parse_headers_only(raw: bytes) -> Message:
    return BytesParser(_class=_ParsedMessage, policy=POLICY).parsebytes(raw, headersonly=True)


@dataclass
class PartTree:
    message: Message                                             # the top-level message (its headers)
    root: PartNode
    payloads: dict[str, bytes] = field(default_factory=dict)    # body bytes of addressable parts
    nodes: dict[str, PartNode] = field(default_factory=dict)    # addressable = not multipart
    defects: list[str] = field(default_factory=list)


def parse_part_tree(raw: bytes) -> PartTree:
    """Parse ``raw``; never raises (an unparsable structure leaves the headers and an empty body)."""
    tree = PartTree(message=parse_headers_only(b""), root=_UNPARSED)
    try:
        tree.message, tree.root = _parse_message(raw, "", tree, depth=0)
    except Exception as error:  # noqa: BLE001 - the promise is "never raise": keep the headers, report the rest
        # RecursionError is the realistic case: the stdlib parser recurses once per nesting level.
        tree = PartTree(message=parse_headers_only(raw), root=_UNPARSED)
        tree.defects.append(f"message: structure could not be parsed ({type(error).__name__})")
    return tree


def _parse_message(raw: bytes, section: str, tree: PartTree, depth: int) -> tuple[Message, PartNode]:
    """A message (top level, or a message/rfc822 body at ``section``) and the node of its body."""
    message = BytesParser(_class=_ParsedMessage, policy=POLICY).parsebytes(raw)
    body_section = encapsulated_section(section, content_type_of(message).startswith("multipart/"))
    return message, _node(message, body_section, tree, depth, raw=raw)


def _node(message: Message, section: str, tree: PartTree, depth: int, *, raw: bytes,
          runs_to_end: bool = True, lost_line_end: bool = False) -> PartNode:
    """One part. ``raw`` is the enclosing message's bytes; ``runs_to_end``: nothing follows it
    there; ``lost_line_end``: it ended an unclosed multipart, so the parser cut its last line break."""
    content_type = content_type_of(message)
    encoding = normalize_transfer_encoding(message.get("content-transfer-encoding")) or DEFAULT_TRANSFER_ENCODING
    label = section or "message"
    tree.defects.extend(f"{label}: {type(defect).__name__}" for defect in message.defects)
    if encoding not in KNOWN_ENCODINGS:
        tree.defects.append(f"{label}: unknown transfer encoding {encoding!r}")
    # The stored payload: 8-bit bytes as surrogate escapes, not decoded (a private attribute typeshed omits).
    payload = message._payload  # type: ignore[attr-defined]
    body = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    if lost_line_end:
        body = next((body + end for end in _LINE_ENDS if raw.endswith(body + end)), body)
    children: tuple[PartNode, ...] = ()
    if depth >= MAX_NESTING_DEPTH:
        tree.defects.append(f"{label}: nested deeper than {MAX_NESTING_DEPTH} levels; not parsed further")
    elif content_type.startswith("multipart/"):
        children = _multipart_children(message, section, tree, depth, raw=raw, runs_to_end=runs_to_end)
    elif content_type == ENCAPSULATED_TYPE:
        children = (_parse_message(body, section, tree, depth + 1)[1],)
    disposition, disposition_pairs = split_header_params(message.get("content-disposition"))
    node = PartNode(
        section=section,
        content_type=content_type,
        params=with_default_charset(content_type, resolve_params(split_header_params(message.get("content-type"))[1])),
        disposition=disposition or None,
        disposition_params=resolve_params(disposition_pairs),
        content_id=parse_content_id(message.get("content-id")),
        encoding=encoding,
        encoded_size=0 if content_type.startswith("multipart/") else len(body),
        children=children,
    )
    if not node.is_multipart:
        tree.payloads[section] = body
        tree.nodes[section] = node
    return node


def _multipart_children(message: Message, section: str, tree: PartTree, depth: int, *, raw: bytes,
                        runs_to_end: bool) -> tuple[PartNode, ...]:
    payload = message._payload  # type: ignore[attr-defined]  # see _node
    parts = [part for part in payload if isinstance(part, Message)] if isinstance(payload, list) else []
    if not parts:
        empty = _empty_body(child_section(section, 1))
        tree.payloads[empty.section] = b""
        tree.nodes[empty.section] = empty
        return (empty,)
    unclosed = any(isinstance(defect, CloseBoundaryNotFoundDefect) for defect in message.defects)
    children = []
    for index, part in enumerate(parts, 1):
        at_end = runs_to_end and unclosed and index == len(parts)
        children.append(_node(part, child_section(section, index), tree, depth + 1, raw=raw,
                              runs_to_end=at_end, lost_line_end=at_end))
    return tuple(children)


def _empty_body(section: str) -> PartNode:
    return PartNode(section=section, content_type="text/plain", params={"charset": DEFAULT_TEXT_CHARSET},
                    encoding=DEFAULT_TRANSFER_ENCODING)
