"""Message flags and mailbox attributes as they cross the adapter's boundary: ``str`` in
canonical case, session-only flags dropped. Pure.

RFC 3501 makes flag and attribute names case-insensitive, and servers do differ (``\\SEEN``
from some Exchange front ends, ``\\NoSelect`` vs ``\\Noselect``): every system flag and
every well-known attribute is spelled one way from here on, so checkpoints, events and API
answers compare by plain string equality. Keywords (``$Forwarded``, user words) keep the
server's spelling.

``\\Recent`` is dropped here, for the mail API and the watcher alike: it is per session
(Dovecot sets it on whichever session sees a message first), meaningless to API users and
to change detection. (The sync core's own guard against it, with the same constant, stays:
it is pure and must not trust its input.)
"""

from __future__ import annotations

from collections.abc import Iterable

from chalicelib.sync.checkpoint import SESSION_FLAGS

SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent")
# RFC 3501, 5258 (LIST-EXTENDED), 3348 (CHILDREN), 6154 (SPECIAL-USE) and Gmail's XLIST.
MAILBOX_ATTRIBUTES = ("\\Noselect", "\\NonExistent", "\\Noinferiors", "\\Marked", "\\Unmarked",
                      "\\Subscribed", "\\Remote", "\\HasChildren", "\\HasNoChildren",
                      "\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash", "\\Important",
                      "\\AllMail", "\\Spam", "\\Starred", "\\Inbox")
_CANONICAL = {name.lower(): name for name in (*SYSTEM_FLAGS, *MAILBOX_ATTRIBUTES)}


def text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def canonical(name: object) -> str:
    """``b"\\\\SEEN"`` -> ``"\\\\Seen"``; keywords and unknown attributes unchanged."""
    decoded = text(name)
    return _CANONICAL.get(decoded.lower(), decoded) if decoded.startswith("\\") else decoded


def message_flags(raw: Iterable[object] | None) -> tuple[str, ...]:
    """A FETCH/STORE ``FLAGS`` value: canonical names, ``\\Recent`` dropped, server order kept."""
    flags = (canonical(flag) for flag in raw or ())
    return tuple(flag for flag in flags if flag not in SESSION_FLAGS)


def mailbox_attributes(raw: Iterable[object] | None) -> tuple[str, ...]:
    """LIST/XLIST attributes in canonical case, server order kept."""
    return tuple(canonical(attribute) for attribute in raw or ())
