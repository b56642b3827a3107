"""Address-list headers (From, To, Cc, Reply-To, …) -> ``[{"name": str, "address": str}]``.

A small tolerant tokenizer rather than ``email.utils.getaddresses``: the split must happen
*before* encoded-words are decoded (``=?utf-8?Q?M=C3=BCller=2C_J=C3=BCrgen?=`` contains a
comma once decoded), and real headers break every rule the stdlib parser relies on.

Rules:
- split at top-level ``,`` and ``;`` (not inside quotes, comments, ``<…>`` or an encoded-word);
- a group (``Team: a@x, b@y;``, ``undisclosed-recipients:;``) contributes its members only;
- ``Name <addr>``, ``"Name" <addr>``, bare ``addr``, ``addr (Name)`` (RFC 822 comment names),
  source routes ``<@relay:addr>`` and ``mailto:`` prefixes are understood;
- an unquoted display name with a comma (``Doe, John <john@x>``, written by Exchange address
  books and CRMs) is glued back together: a piece with neither ``@`` nor ``<`` joins the next
  piece when that one has a ``<…>`` address;
- names are RFC 2047-decoded after unquoting (Outlook and PHP libraries put encoded-words
  inside quotes); raw 8-bit names are decoded like any 8-bit header text;
- IDN domains stay exactly as written (Unicode or ``xn--``): we do not rewrite addresses;
- a piece that yields no address (garbage, a lone word, ``<>``) is skipped. ``name`` is
  ``""`` when there is none.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from chalicelib.mime.encodedwords import (
    ENCODED_WORD_TEXT,
    HeaderInput,
    decode_header_value,
    decode_raw_header_text,
    unfold_header_bytes,
)

_OPENERS = {'"': '"', "(": ")", "<": ">"}
_INNER_COMMENT = re.compile(r"\(([^()]*)\)")
_QUOTE_OR_PAIR = re.compile(r'\\(.)|"')


def parse_address_list(value: HeaderInput, *, fallback_charset: str | None = None) -> list[dict[str, str]]:
    """Every usable mailbox of an address-list header, in order."""
    text = decode_raw_header_text(unfold_header_bytes(value), fallback_charset)
    pieces = _glue_split_names(_split_top_level(text))
    found = []
    for piece in pieces:
        mailbox = _parse_mailbox(piece)
        if mailbox is not None:
            found.append(mailbox)
    return found


def _split_top_level(text: str) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        word = ENCODED_WORD_TEXT.match(text, index) if char == "=" else None
        if word:
            current.append(word.group())
            index = word.end()
            continue
        if char in _OPENERS:
            end = _closing(text, index)
            current.append(text[index:end])
            index = end
            continue
        if char in ",;":
            pieces.append("".join(current))
            current = []
        elif char == ":":
            # Group syntax: drop the group's display name, keep its members.
            current = []
        else:
            current.append(char)
        index += 1
    pieces.append("".join(current))
    return [piece.strip() for piece in pieces if piece.strip()]


def _closing(text: str, start: int) -> int:
    """Index just past the quote/comment/angle that opens at ``start`` (end of text if unclosed)."""
    opener = text[start]
    closer = _OPENERS[opener]
    depth = 0
    index = start
    while index < len(text):
        char = text[index]
        if char == "\\" and opener != "<":
            index += 2
            continue
        if opener == '"':
            if char == '"' and index > start:
                return index + 1
        elif char == opener:
            depth += 1
        elif char == closer:
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    return len(text)


def _angle_start(piece: str) -> int:
    """Position of the ``<`` that opens the address, skipping quoted names like ``"a <b>"``."""
    index = 0
    while index < len(piece):
        if piece[index] == '"':
            index = _closing(piece, index)
            continue
        if piece[index] == "<":
            return index
        index += 1
    return -1


def _glue_split_names(pieces: list[str]) -> list[str]:
    glued: list[str] = []
    for piece in pieces:
        previous = glued[-1] if glued else None
        if previous is not None and "@" not in previous and "<" not in previous and "<" in piece:
            glued[-1] = f"{previous}, {piece}"
        else:
            glued.append(piece)
    return glued


def _parse_mailbox(piece: str) -> dict[str, str] | None:
    comments: list[str] = []

    def keep_comment(match: re.Match[str]) -> str:
        comments.append(match.group(1))
        return " "

    angle = _angle_start(piece)
    if angle >= 0:
        address, _, after = piece[angle + 1:].partition(">")
        name_text = f"{piece[:angle]} {after}"
        if "@" in address and ":" in address and address.lstrip().startswith("@"):
            address = address.split(":", 1)[1]  # source route "<@relay1,@relay2:user@host>"
    else:
        tokens = _uncomment(piece, keep_comment).split()
        positions = [index for index, token in enumerate(tokens) if "@" in token]
        if not positions:
            return None
        address = tokens[positions[-1]]
        name_text = " ".join(tokens[:positions[-1]] + tokens[positions[-1] + 1:])
    name_text = _uncomment(name_text, keep_comment)
    address = _clean_address(address)
    if not address:
        return None
    name = _decode_name(name_text) or _decode_name(" ".join(comments))
    return {"name": name, "address": address}


def _uncomment(text: str, on_comment: Callable[[re.Match[str]], str]) -> str:
    previous = None
    while previous != text:  # nested comments: strip the innermost first
        previous, text = text, _INNER_COMMENT.sub(on_comment, text)
    return text


def _clean_address(address: str) -> str:
    address = re.sub(r"\s+", "", address).strip("\"'<>")
    if address.lower().startswith("mailto:"):
        address = address[len("mailto:"):]
    return address


def _decode_name(text: str) -> str:
    # Drop quotes and undo quoted pairs, then decode encoded-words (even those inside quotes).
    unquoted = _QUOTE_OR_PAIR.sub(lambda match: match.group(1) or "", " ".join(text.split()))
    return decode_header_value(unquoted).strip(" '")
