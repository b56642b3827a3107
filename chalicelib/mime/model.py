"""The values this package hands out, and the neutral part tree both parsers build.

:class:`PartNode` is what a MIME part looks like once parsed, whoever parsed it: Dovecot
(via BODYSTRUCTURE, :mod:`.structure`) or the ``email`` package (:mod:`.decode`). Both feed
the same tree to :func:`~chalicelib.mime.classify.summarize_parts`, which is why their
attachment lists and text part numbers agree.

IMAP section numbers (RFC 3501 section 6.4.5), as :func:`child_section` and
:func:`encapsulated_section` compute them::

    multipart/mixed                    (top level: no number of its own)
    ├── text/plain                     "1"
    ├── message/rfc822                 "2"
    │   └── multipart/mixed            (the encapsulated body: addressed as "2" too)
    │       ├── text/plain             "2.1"
    │       └── application/pdf        "2.2"
    └── message/rfc822                 "3"
        └── text/plain                 "3.1"   (a non-multipart encapsulated body is N.1)

    text/plain (a message that is not multipart)   "1"
"""

from __future__ import annotations

from dataclasses import dataclass, field

# RFC 2045 defaults for a part that declares nothing (IMAP servers report them in BODYSTRUCTURE).
DEFAULT_TEXT_CHARSET = "us-ascii"
DEFAULT_TRANSFER_ENCODING = "7bit"


def with_default_charset(content_type: str, params: dict[str, str]) -> dict[str, str]:
    """``params`` with RFC 2045's ``charset=us-ascii`` added to a ``text/*`` part that has none."""
    if content_type.startswith("text/") and not params.get("charset"):
        return {**params, "charset": DEFAULT_TEXT_CHARSET}
    return params


def child_section(parent_section: str, index: int) -> str:
    """Section of the ``index``-th (1-based) child of a multipart whose section is ``parent_section``."""
    return f"{parent_section}.{index}" if parent_section else str(index)


def encapsulated_section(message_section: str, body_is_multipart: bool) -> str:
    """Section of the body of a message (the top level has section ``""``).

    A multipart body shares the message's number (its children are ``N.1``, ``N.2``…);
    any other body is ``N.1`` (``1`` at the top level).
    """
    return message_section if body_is_multipart else child_section(message_section, 1)


@dataclass(frozen=True, slots=True)
class PartNode:
    """One MIME part. ``children`` are a multipart's parts, or a message/rfc822 part's body."""

    section: str
    content_type: str                    # lowercased "type/subtype"
    params: dict[str, str]               # Content-Type parameters, decoded, lowercased names
    disposition: str | None = None       # lowercased "attachment"/"inline"/…
    disposition_params: dict[str, str] = field(default_factory=dict)
    content_id: str | None = None        # without the angle brackets
    encoding: str | None = None          # normalized Content-Transfer-Encoding
    encoded_size: int = 0                # octets of the body as stored (still transfer-encoded)
    children: tuple[PartNode, ...] = ()

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    @property
    def filename(self) -> str | None:
        return self.disposition_params.get("filename") or self.params.get("name") or None

    @property
    def charset(self) -> str | None:
        return self.params.get("charset") or None


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """An attachment as the API lists it. ``part`` is the IMAP section to fetch it with."""

    part: str
    filename: str | None
    content_type: str
    encoded_size: int
    encoding: str | None
    embedded: bool                       # referenced from HTML (cid:) rather than attached
    inline: bool                         # Content-Disposition: inline
    content_id: str | None
    disposition: str | None


@dataclass(frozen=True, slots=True)
class TextPartRef:
    """A body text part: where it is and how to decode it once fetched."""

    part: str
    content_type: str                    # "text/plain" or "text/html"
    charset: str | None                  # as declared (may be missing, unknown or wrong)
    encoding: str | None
    encoded_size: int


@dataclass(frozen=True, slots=True)
class TextParts:
    """The body text parts, in display order; several parts are shown one after another."""

    plain: list[TextPartRef]
    html: list[TextPartRef]

    @property
    def plain_encoded_size(self) -> int:
        return sum(ref.encoded_size for ref in self.plain)

    @property
    def html_encoded_size(self) -> int:
        return sum(ref.encoded_size for ref in self.html)


@dataclass(frozen=True, slots=True)
class MessageStructure:
    """What a message contains, without its content: enough to list it and fetch its parts."""

    attachments: list[AttachmentInfo]
    text: TextParts
