"""What may appear in the text of an outgoing header (subject, display name, custom value).

The ``email`` package refuses any character ``str.splitlines()`` breaks at (CR, LF, VT, FF,
FS, GS, RS, NEL, U+2028, U+2029) in a header value, and the other C0 controls and DEL are
invisible garbage in every mail client. Input from the API is refused with a 400 naming the
field; text taken from elsewhere (the subject of a message being replied to) is cleaned.

Non-ASCII unstructured text (the Subject) and non-ASCII display names are written as RFC 2047
encoded words by :class:`EncodedText` and :class:`EncodedAddressList`, not by the ``email``
folder: CPython's folder loses or doubles the space before a non-ASCII word where it folds (it
leaves the space at the end of one line and adds folding whitespace, or drops it between two
encoded words), so "... ¡Hola" arrived as
"...¡Hola" or "...  ¡Hola". Here every character, spaces included, sits inside an encoded word;
the whitespace between encoded words is not text (RFC 2047 6.2), so decoders read back
exactly the original. In a display name CPython's *parser* keeps the whitespace between two
encoded words (RFC-following readers drop it), so a name is written as plain atoms and runs of
other words, each run one encoded word with its inner spaces: both kinds of reader agree as long
as a run fits in one word (about 50 octets of text); a longer run is split and only the
``email`` package then reads an extra space at the split.
"""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.policy import Policy

_HEADER_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


def header_text_problem(text: str) -> str | None:
    """Why ``text`` cannot be a header value, or None when it can."""
    found = _HEADER_UNSAFE.search(text)
    return None if found is None else f"contains the control character U+{ord(found.group()):04X}"


def clean_header_text(text: str) -> str:
    """``text`` with every character :func:`header_text_problem` objects to replaced by a space."""
    return _HEADER_UNSAFE.sub(" ", text)


_MAX_LINE = 78  # RFC 5322 2.1.1
# RFC 5322 atext, without "'" (mail readers strip Outlook's 'Name' quotes) and "=", "?"
# (which could look like an encoded word).
_PLAIN_ATOM = re.compile(r"[A-Za-z0-9!#$%&*+\-/^_`{|}~]+")


def _fold_tokens(name: str, tokens: list[str], linesep: str) -> str:
    """``name: tokens`` joined by spaces, breaking lines between tokens to stay within 78 octets."""
    lines = [f"{name}:"]
    for token in tokens:
        # An empty token (a run of spaces in a quoted name) never starts a line, which would
        # then be only whitespace.
        if token and len(lines[-1]) + 1 + len(token) > _MAX_LINE and lines[-1] != f"{name}:":
            lines.append("")
        lines[-1] += " " + token
    return linesep.join(lines) + linesep


# RFC 2047 5(3): in "Q" encoding these stand for themselves anywhere; everything else is =XX.
_Q_LITERAL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_WORD_PREFIX, _WORD_SUFFIX = "=?utf-8?q?", "?="
_MAX_WORD = 66  # "Subject: " + word stays within 78 octets (RFC 2047 2 allows 75 per word)


def _q_char(char: str) -> str:
    if char == " ":
        return "_"
    return "".join(chr(b) if b in _Q_LITERAL else f"={b:02X}" for b in char.encode())


def encoded_words(text: str) -> list[str]:
    """``text`` as "Q" encoded words of at most 66 octets, never splitting a character."""
    words: list[str] = []
    current = ""
    room = _MAX_WORD - len(_WORD_PREFIX) - len(_WORD_SUFFIX)
    for char in text:
        piece = _q_char(char)
        if current and len(current) + len(piece) > room:
            words.append(_WORD_PREFIX + current + _WORD_SUFFIX)
            current = ""
        current += piece
    if current:
        words.append(_WORD_PREFIX + current + _WORD_SUFFIX)
    return words


class EncodedText(str):
    """An unstructured header value the ``email`` package stores and writes as we encoded it.

    ``EmailPolicy`` keeps a value with a matching ``name`` as is and writes it with its
    ``fold`` method, so the stdlib folder never touches the text.
    """

    name: str

    def __new__(cls, name: str, text: str) -> EncodedText:
        made = super().__new__(cls, text)
        made.name = name
        return made

    def fold(self, *, policy: Policy) -> str:
        return _fold_tokens(self.name, encoded_words(str(self)), policy.linesep)


def display_name_tokens(name: str) -> list[str]:
    """A non-empty display name (no leading or trailing space) as plain atoms and encoded words."""
    words = name.split(" ")
    # A word stays plain only between two non-empty words: a run of spaces then always lies
    # inside an encoded word, and every run starts and ends with a character.
    plain = [bool(_PLAIN_ATOM.fullmatch(word)) and (i == 0 or words[i - 1] != "")
             and (i == len(words) - 1 or words[i + 1] != "") for i, word in enumerate(words)]
    tokens: list[str] = []
    run: list[str] = []
    for word, is_plain in zip(words, plain, strict=True):
        if not is_plain:
            run.append(word)
            continue
        if run:
            tokens += encoded_words(" ".join(run))
            run = []
        tokens.append(word)
    if run:
        tokens += encoded_words(" ".join(run))
    return tokens


class EncodedAddressList(str):
    """An address header (From, To, ...) written as we encoded it, like :class:`EncodedText`.

    Addresses must already be ASCII (A-label domains); ASCII names are quoted as the ``email``
    package quotes them.
    """

    name: str
    tokens: list[str]

    def __new__(cls, name: str, addresses: list[Address]) -> EncodedAddressList:
        tokens: list[str] = []
        for index, address in enumerate(addresses):
            if address.display_name.isascii():
                mailbox = str(address).split(" ")  # folding at a space is FWS, in quotes too
            else:
                mailbox = [*display_name_tokens(address.display_name), f"<{address.addr_spec}>"]
            if index < len(addresses) - 1:
                mailbox[-1] += ","
            tokens += mailbox
        made = super().__new__(cls, ", ".join(str(a) for a in addresses))
        made.name = name
        made.tokens = tokens
        return made

    def fold(self, *, policy: Policy) -> str:
        return _fold_tokens(self.name, self.tokens, policy.linesep)
