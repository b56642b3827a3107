"""Replies and forwards (pure): threading headers, subject prefixes, recipients, quoting.

What a mail client does when the user presses Reply, Reply All or Forward:

- ``In-Reply-To`` is the original's Message-ID; ``References`` is the original's References
  (or, lacking one, its single In-Reply-To, RFC 5322 3.6.4) followed by its Message-ID,
  each id once. Very long chains keep the thread root and the most recent ids (the
  middle carries no information clients use; Exchange rejects headers over ~16 KB).
  Forwards get the same headers, so the forward files under the thread in the user's own
  mailbox (Gmail, Apple Mail and Outlook thread them the same way).
- ``Re:`` / ``Fwd:`` are prepended unless the subject already carries an equivalent prefix,
  including the localized ones Outlook writes (``AW:``, ``SV:``, ``WG:``, ``TR:`` ...).
- Reply goes to Reply-To, else From; when the original came from the user themself
  (replying in Sent), to the original's To. Reply-all adds the original To and Cc; the
  user's own addresses are never among the recipients, and nobody appears twice.
- Quoting (``inline``): the plain text gets an attribution line and ``> `` prefixes; the
  HTML gets a ``<blockquote type="cite">``. An inline forward gets the usual
  "Forwarded message" block instead.

No I/O here: the original arrives as an :class:`OriginalMessage` built by the service.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from chalicelib.smtp.addresses import Mailbox, address_key, unique_mailboxes
from chalicelib.smtp.compose import AttachmentSpec

Action = Literal["reply", "reply-all", "forward"]
MAX_REFERENCES = 20
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|antw|vs|ref|odp|r)(\[\d+\])?\s*:", re.IGNORECASE)
_FORWARD_PREFIX = re.compile(r"^\s*(fwd?|fw|wg|tr|rv|enc|vs|doorst)(\[\d+\])?\s*:", re.IGNORECASE)
_BODY = re.compile(r"<body\b[^>]*>(?P<inner>.*)</body\s*>", re.IGNORECASE | re.DOTALL)
_HEAD = re.compile(r"<head\b.*?</head\s*>|<!doctype[^>]*>|</?html\b[^>]*>", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
BLOCKQUOTE_STYLE = "margin:0 0 0 .8ex;border-left:1px solid #ccc;padding-left:1ex"


@dataclass(frozen=True)
class OriginalMessage:
    """The referenced message, as far as replying and forwarding need it."""

    message_id: str | None = None
    references: tuple[str, ...] = ()
    in_reply_to: tuple[str, ...] = ()
    subject: str = ""
    date: str = ""
    sender: tuple[Mailbox, ...] = ()
    reply_to: tuple[Mailbox, ...] = ()
    to: tuple[Mailbox, ...] = ()
    cc: tuple[Mailbox, ...] = ()
    text: str | None = None
    html: str | None = None
    attachments: tuple[AttachmentSpec, ...] = ()


def threading_headers(original: OriginalMessage) -> tuple[str | None, tuple[str, ...]]:
    """(In-Reply-To, References) for a reply to or forward of ``original``."""
    chain = list(original.references)
    if not chain and len(original.in_reply_to) == 1:
        chain = list(original.in_reply_to)
    if original.message_id:
        chain.append(original.message_id)
    unique = list(dict.fromkeys(chain))
    if len(unique) > MAX_REFERENCES:
        unique = [unique[0], *unique[-(MAX_REFERENCES - 1):]]
    return original.message_id, tuple(unique)


def prefixed_subject(subject: str, action: Action) -> str:
    pattern, prefix = (_FORWARD_PREFIX, "Fwd: ") if action == "forward" else (_REPLY_PREFIX, "Re: ")
    subject = subject.strip()
    return subject if pattern.match(subject) else prefix + subject


def reply_recipients(original: OriginalMessage, action: Action,
                     own_addresses: set[str]) -> tuple[list[Mailbox], list[Mailbox]]:
    """(to, cc) for a reply or reply-all; ``own_addresses`` are the user's (any case)."""
    own = {address_key(a) for a in own_addresses}
    from_self = bool(original.sender) and all(address_key(m.address) in own for m in original.sender)
    if from_self:
        primary = list(original.to)
    else:
        primary = list(original.reply_to or original.sender)
    to = unique_mailboxes(primary, exclude=own)
    if action != "reply-all":
        return to, []
    taken = own | {address_key(m.address) for m in to}
    cc = unique_mailboxes([*original.to, *original.cc], exclude=taken)
    return to, cc


def _display(mailboxes: tuple[Mailbox, ...]) -> str:
    return ", ".join(f"{m.name} <{m.address}>" if m.name else m.address for m in mailboxes)


def _html_body(html: str) -> str:
    match = _BODY.search(html)
    return match.group("inner") if match else _HEAD.sub("", html)


def _text_as_html(text: str) -> str:
    return html_lib.escape(text).replace("\r\n", "\n").replace("\n", "<br>\n")


def _append_html(user_html: str, addition: str) -> str:
    """Add ``addition`` at the end of the user's HTML, inside its body when it has one."""
    ends = list(_BODY_END.finditer(user_html))
    if not ends:
        return user_html + addition
    cut = ends[-1].start()
    return user_html[:cut] + addition + user_html[cut:]


def _original_text(original: OriginalMessage, text_from_html: Callable[[str], str]) -> str:
    if original.text is not None:
        return original.text
    return text_from_html(original.html) if original.html else ""


def _original_html(original: OriginalMessage) -> str:
    return _html_body(original.html) if original.html is not None else _text_as_html(original.text or "")


def quote_reply(original: OriginalMessage, text: str | None, html: str | None,
                text_from_html: Callable[[str], str]) -> tuple[str | None, str | None]:
    """The user's text/html followed by the quoted original (each body only if the user gave it)."""
    attribution = f"On {original.date or 'an earlier date'}, {_display(original.sender) or 'someone'} wrote:"
    new_text = new_html = None
    if text is not None or html is None:
        quoted = "\n".join(f"> {line}" if line else ">" for line in
                           _original_text(original, text_from_html).splitlines())
        new_text = f"{text or ''}\n\n{attribution}\n{quoted}\n"
    if html is not None:
        new_html = _append_html(html, (
            f'<br><div class="imapless_quote"><div>{html_lib.escape(attribution)}</div>'
            f'<blockquote type="cite" style="{BLOCKQUOTE_STYLE}">{_original_html(original)}</blockquote></div>'))
    return new_text, new_html


def _forward_header_lines(original: OriginalMessage) -> list[tuple[str, str]]:
    lines = [("From", _display(original.sender)), ("Date", original.date), ("Subject", original.subject),
             ("To", _display(original.to)), ("Cc", _display(original.cc))]
    return [(name, value) for name, value in lines if value]


def inline_forward(original: OriginalMessage, text: str | None, html: str | None,
                   text_from_html: Callable[[str], str]) -> tuple[str | None, str | None]:
    """The user's text/html followed by the original as a "Forwarded message" block."""
    banner = "---------- Forwarded message ---------"
    lines = _forward_header_lines(original)
    new_text = new_html = None
    if text is not None or html is None:
        header_block = "\n".join(f"{name}: {value}" for name, value in lines)
        body = _original_text(original, text_from_html).rstrip("\n")
        new_text = f"{text or ''}\n\n{banner}\n{header_block}\n\n{body}\n"
    if html is not None:
        header_block = "<br>\n".join(f"{name}: {html_lib.escape(value)}" for name, value in lines)
        new_html = _append_html(html, (
            f'<br><div class="imapless_forward"><div>{banner}<br>\n{header_block}</div><br>'
            f"{_original_html(original)}</div>"))
    return new_text, new_html


def inline_images(original: OriginalMessage) -> list[AttachmentSpec]:
    """The original's parts its HTML shows through ``cid:`` (needed when quoting that HTML)."""
    lowered = (original.html or "").lower()
    return [a for a in original.attachments if a.content_id and f"cid:{a.content_id.lower()}" in lowered]


def forwarded_attachments(original: OriginalMessage) -> list[AttachmentSpec]:
    """The original's real attachments (not the images its HTML shows inline)."""
    shown_inline = {id(a) for a in inline_images(original)}
    return [a for a in original.attachments if id(a) not in shown_inline]
