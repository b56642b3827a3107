"""What may appear in the text of an outgoing header (subject, display name, custom value).

The ``email`` package refuses any character ``str.splitlines()`` breaks at (CR, LF, VT, FF,
FS, GS, RS, NEL, U+2028, U+2029) in a header value, and the other C0 controls and DEL are
invisible garbage in every mail client. Input from the API is refused with a 400 naming the
field; text taken from elsewhere (the subject of a message being replied to) is cleaned.

Non-ASCII unstructured text (the Subject) is written as RFC 2047 encoded words by
:class:`EncodedText`, not by the ``email`` folder: CPython's folder loses or doubles the space
before a non-ASCII word where it folds (it leaves the space at the end of one line and adds
folding whitespace, or drops it between two encoded words), so "... ¡Hola" arrived as
"...¡Hola" or "...  ¡Hola". Here every character, spaces included, sits inside an encoded word;
the whitespace between encoded words is not text (RFC 2047 6.2), so decoders read back
exactly the original.
"""

from __future__ import annotations

import re
from email.policy import Policy

_HEADER_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


def header_text_problem(text: str) -> str | None:
    """Why ``text`` cannot be a header value, or None when it can."""
    found = _HEADER_UNSAFE.search(text)
    return None if found is None else f"contains the control character U+{ord(found.group()):04X}"


def clean_header_text(text: str) -> str:
    """``text`` with every character :func:`header_text_problem` objects to replaced by a space."""
    return _HEADER_UNSAFE.sub(" ", text)


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
        return f"{self.name}: " + f"{policy.linesep} ".join(encoded_words(str(self))) + policy.linesep
