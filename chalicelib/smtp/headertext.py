"""What may appear in the text of an outgoing header (subject, display name, custom value).

The ``email`` package refuses any character ``str.splitlines()`` breaks at (CR, LF, VT, FF,
FS, GS, RS, NEL, U+2028, U+2029) in a header value, and the other C0 controls and DEL are
invisible garbage in every mail client. Input from the API is refused with a 400 naming the
field; text taken from elsewhere (the subject of a message being replied to) is cleaned.
"""

from __future__ import annotations

import re

_HEADER_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


def header_text_problem(text: str) -> str | None:
    """Why ``text`` cannot be a header value, or None when it can."""
    found = _HEADER_UNSAFE.search(text)
    return None if found is None else f"contains the control character U+{ord(found.group()):04X}"


def clean_header_text(text: str) -> str:
    """``text`` with every character :func:`header_text_problem` objects to replaced by a space."""
    return _HEADER_UNSAFE.sub(" ", text)
