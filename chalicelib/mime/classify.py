"""What is body text, what is an attachment: one set of rules for listing and for fetching.

:func:`classify_part` decides the role of a single part; :func:`summarize_parts` walks a
:class:`~chalicelib.mime.model.PartNode` tree with it and picks the displayed text. Both
:mod:`.structure` (Dovecot's BODYSTRUCTURE) and :mod:`.decode` (raw bytes) call
:func:`summarize_parts`, so a message lists the same attachments and text parts whether the
API looked at its structure or at its bytes.

Roles of a part (first rule that matches):
1. ``multipart/*``: a container; its children are walked.
2. ``message/rfc822`` (or ``message/global``, when the server describes its body): an
   attachment (the forwarded ``.eml``) *and* a container: the attachments of the
   encapsulated message are listed too, under its section numbers; its text is the
   encapsulated message's, not ours.
3. ``Content-Disposition: attachment``: an attachment, whatever its type (text included).
4. a resource of ``multipart/related`` (any child but the root, which is the ``start``
   parameter's part or else the first): an attachment.
5. ``text/plain`` or ``text/html`` with no file name, or inside ``multipart/alternative``
   (where a part is a rendering of the body even if a mailer named it): body text.
6. anything else (images, ``text/calendar``, ``text/plain`` with a file name such as Apple
   Mail's inline ``notes.txt``, delivery reports, signatures): an attachment.

Text selection: inside ``multipart/alternative`` each alternative is walked on its own and
the *last* one holding plain text gives the plain text, the last one holding HTML gives the
HTML (RFC 2046: the last alternative is the richest). Elsewhere text parts add up in
document order (Apple Mail splits a body around inline images: ``html, image, html``).
Parts of an alternative that is not chosen are neither text nor attachments.

Flags of an attachment:
- ``inline``: its Content-Disposition is ``inline``;
- ``embedded``: it has a Content-ID and is a ``multipart/related`` resource or inline,
  i.e. an HTML body refers to it as ``cid:`` (Outlook puts inline images with a Content-ID
  straight into multipart/mixed, so "related" alone would miss them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from chalicelib.mime.model import AttachmentInfo, MessageStructure, PartNode, TextPartRef, TextParts

BODY_TEXT_TYPES = ("text/plain", "text/html")
ENCAPSULATED_MESSAGE_TYPES = ("message/rfc822", "message/global")


class PartRole(StrEnum):
    CONTAINER = "container"
    MESSAGE = "message"          # an attached message: listed as an attachment, then walked
    TEXT = "text"
    ATTACHMENT = "attachment"


def classify_part(node: PartNode, *, in_alternative: bool = False, related_resource: bool = False) -> PartRole:
    """The role of one part (see the module docstring for the rules, in this order)."""
    if node.is_multipart:
        return PartRole.CONTAINER
    if node.content_type in ENCAPSULATED_MESSAGE_TYPES and node.children:
        return PartRole.MESSAGE
    if node.disposition == "attachment" or related_resource:
        return PartRole.ATTACHMENT
    if node.content_type in BODY_TEXT_TYPES and (node.filename is None or in_alternative):
        return PartRole.TEXT
    return PartRole.ATTACHMENT


def attachment_info(node: PartNode, *, related_resource: bool = False) -> AttachmentInfo:
    inline = node.disposition == "inline"
    return AttachmentInfo(
        part=node.section,
        filename=node.filename,
        content_type=node.content_type,
        encoded_size=node.encoded_size,
        encoding=node.encoding,
        embedded=node.content_id is not None and (related_resource or inline),
        inline=inline,
        content_id=node.content_id,
        disposition=node.disposition,
    )


def text_part_ref(node: PartNode) -> TextPartRef:
    return TextPartRef(part=node.section, content_type=node.content_type, charset=node.charset,
                       encoding=node.encoding, encoded_size=node.encoded_size)


@dataclass
class _Found:
    plain: list[PartNode] = field(default_factory=list)
    html: list[PartNode] = field(default_factory=list)
    attachments: list[AttachmentInfo] = field(default_factory=list)


def summarize_parts(root: PartNode) -> MessageStructure:
    """Attachments and displayed text parts of the message whose body is ``root``."""
    found = _Found()
    _walk(root, found, in_alternative=False, related_resource=False)
    return MessageStructure(
        attachments=found.attachments,
        text=TextParts(plain=[text_part_ref(node) for node in found.plain],
                       html=[text_part_ref(node) for node in found.html]),
    )


def _walk(node: PartNode, found: _Found, *, in_alternative: bool, related_resource: bool) -> None:
    role = classify_part(node, in_alternative=in_alternative, related_resource=related_resource)
    if role is PartRole.TEXT:
        (found.html if node.content_type == "text/html" else found.plain).append(node)
    elif role is PartRole.ATTACHMENT:
        found.attachments.append(attachment_info(node, related_resource=related_resource))
    elif role is PartRole.MESSAGE:
        found.attachments.append(attachment_info(node, related_resource=related_resource))
        inner = _Found()
        for child in node.children:
            _walk(child, inner, in_alternative=False, related_resource=False)
        found.attachments.extend(inner.attachments)
    elif node.content_type == "multipart/alternative":
        _walk_alternatives(node, found)
    elif node.content_type == "multipart/related":
        root_index = _related_root_index(node)
        for index, child in enumerate(node.children):
            _walk(child, found, in_alternative=False,
                  related_resource=related_resource or index != root_index)
    else:
        for child in node.children:
            _walk(child, found, in_alternative=False, related_resource=related_resource)


def _walk_alternatives(node: PartNode, found: _Found) -> None:
    chosen_plain: list[PartNode] = []
    chosen_html: list[PartNode] = []
    for child in node.children:
        alternative = _Found()
        _walk(child, alternative, in_alternative=True, related_resource=False)
        found.attachments.extend(alternative.attachments)
        chosen_plain = alternative.plain or chosen_plain
        chosen_html = alternative.html or chosen_html
    found.plain.extend(chosen_plain)
    found.html.extend(chosen_html)


def _related_root_index(node: PartNode) -> int:
    start = node.params.get("start", "").strip().strip("<>")
    if start:
        for index, child in enumerate(node.children):
            if child.content_id == start:
                return index
    return 0
