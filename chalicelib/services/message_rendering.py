"""What a browser may show of a message: EmailEngine's ``webSafeHtml`` and ``embedAttachedImages``.

How the two options combine (as EmailEngine resolves them, ``applyWebSafeHtmlOptions``):

    webSafeHtml  embedAttachedImages   text read   html returned
    -----------  -------------------   ---------   --------------------------------------------
    false        absent / false        textType    as the message has it
    false        true                  textType    cid: images inlined as data: URLs
    true         absent / true         both        sanitized (from plain text if no HTML), inlined
    true         false                 both        sanitized, cid: references left as they are

Inlining is bounded: the data URLs of one message add up to at most
``IMAPLESS_EMBED_IMAGES_MAX_BYTES``; an image that does not fit keeps its ``cid:``
reference (the client can still fetch it as an attachment) and the answer carries a
warning naming it. Only images the HTML shows (``<img src="cid:...">``) are fetched, all
in one FETCH on the connection that read the message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from chalicelib.imap import messages as imap_messages
from chalicelib.imap.connection import ImapConnection
from chalicelib.mime.model import AttachmentInfo, MessageStructure
from chalicelib.mime.transfer import decode_transfer_encoding

DATA_URL_PREFIX_BYTES = len("data:;base64,")


@dataclass(frozen=True)
class HtmlOptions:
    web_safe: bool = False
    embed_images: bool = False

    @classmethod
    def resolve(cls, web_safe_html: bool, embed_attached_images: bool | None) -> HtmlOptions:
        """Absent ``embedAttachedImages`` follows ``webSafeHtml``; an explicit value wins."""
        embed = web_safe_html if embed_attached_images is None else embed_attached_images
        return cls(web_safe=web_safe_html, embed_images=embed)

    def text_type(self, asked: str) -> str:
        # Sanitizing needs both: the plain text becomes the HTML when there is none.
        return "*" if self.web_safe else asked


@dataclass(frozen=True)
class RenderedHtml:
    html: str | None
    web_safe: bool
    warnings: tuple[str, ...] = ()


def _data_url_bytes(attachment: AttachmentInfo) -> int:
    """Size of its data URL, from the stored size: base64 stays about as long (line breaks
    aside); any other encoding grows by 4/3 once base64-encoded."""
    content_bytes = attachment.encoded_size
    if (attachment.encoding or "").lower() != "base64":
        content_bytes = 4 * math.ceil(content_bytes / 3)
    return DATA_URL_PREFIX_BYTES + len(attachment.content_type) + content_bytes


def _choose(structure: MessageStructure, cids: list[str],
            budget: int) -> tuple[list[AttachmentInfo], list[str]]:
    """The attachments to inline, in order of first use while they fit, and warnings for the rest."""
    by_cid = {a.content_id: a for a in structure.attachments if a.content_id}
    chosen, warnings, left = [], [], budget
    for cid in cids:
        attachment = by_cid.get(cid)
        if attachment is None:
            continue  # a reference to nothing in the message: nothing to inline, as a browser shows it
        size = _data_url_bytes(attachment)
        if size > left:
            warnings.append(f"image cid:{cid} ({attachment.encoded_size} bytes) was not embedded: the embedded "
                            f"images would exceed {budget} bytes; fetch it as attachment part {attachment.part}")
            continue
        chosen.append(attachment)
        left -= size
    return chosen, warnings


def render_html(conn: ImapConnection, uid: int, structure: MessageStructure, texts: dict[str, str | None],
                options: HtmlOptions, *, budget: int) -> RenderedHtml:
    """The ``html`` to return for ``texts`` under ``options`` (fetching inlined images on ``conn``)."""
    html = texts.get("html")
    if not options.web_safe and not options.embed_images:
        return RenderedHtml(html, False)
    # Imported here: a plain read (the common case, and every cold start) never pays for it.
    from chalicelib.mime.webhtml import InlineImage, cid_images, embed_cid_images, web_safe_html

    if options.web_safe:
        html = web_safe_html(html, texts.get("plain"))
    if not options.embed_images or not html:
        return RenderedHtml(html, options.web_safe)
    chosen, warnings = _choose(structure, cid_images(html), budget)
    if not chosen:
        return RenderedHtml(html, options.web_safe, tuple(warnings))
    fetched = imap_messages.fetch_sections(conn, uid, [(a.part, None) for a in chosen])
    payloads = fetched[0] if fetched is not None else {}
    images: dict[str, InlineImage] = {}
    for attachment in chosen:
        assert attachment.content_id is not None  # chosen by content id
        content = decode_transfer_encoding(payloads.get(attachment.part, b""), attachment.encoding)
        images[attachment.content_id] = InlineImage(attachment.content_type, content)
    return RenderedHtml(embed_cid_images(html, images), options.web_safe, tuple(warnings))
