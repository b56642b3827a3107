"""What an IMAP server announced it can do: one frozen value, asked in one way.

A session reads CAPABILITY once after login (:mod:`chalicelib.imap.session`) and every
module decides what to send from a :class:`Capabilities` instead of testing strings. Names
are upper-case; ``CONDSTORE`` counts as present when only ``QRESYNC`` is announced
(RFC 7162 3.2.3: QRESYNC implies CONDSTORE).

Memory: the watcher holds thousands of connections to few servers, so equal capability
lists share one instance (:func:`shared_capabilities`, bounded).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# Distinct servers (and so distinct capability lists) are few; the table is bounded anyway.
SHARED_CAPABILITIES_MAX = 1024
_shared: dict[frozenset[str], Capabilities] = {}


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Upper-case capability names; ``"MOVE" in caps`` and ``caps.has("move")`` both work."""

    names: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, raw: Iterable[bytes | str]) -> Capabilities:
        return cls(frozenset((c.decode("ascii", "replace") if isinstance(c, bytes) else c).upper() for c in raw))

    def has(self, name: str) -> bool:
        return name.upper() in self.names

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.has(name)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.names))

    def __len__(self) -> int:
        return len(self.names)

    @property
    def imap4rev1(self) -> bool:
        return "IMAP4REV1" in self.names or "IMAP4REV2" in self.names

    @property
    def starttls(self) -> bool:
        return "STARTTLS" in self.names

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.names or "QRESYNC" in self.names

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.names

    @property
    def notify(self) -> bool:
        return "NOTIFY" in self.names

    @property
    def idle(self) -> bool:
        return "IDLE" in self.names

    @property
    def move(self) -> bool:
        return "MOVE" in self.names

    @property
    def uidplus(self) -> bool:
        return "UIDPLUS" in self.names

    @property
    def unselect(self) -> bool:
        return "UNSELECT" in self.names

    @property
    def special_use(self) -> bool:
        return "SPECIAL-USE" in self.names

    @property
    def xlist(self) -> bool:
        return "XLIST" in self.names

    @property
    def list_extended(self) -> bool:
        return "LIST-EXTENDED" in self.names

    @property
    def list_status(self) -> bool:
        return "LIST-STATUS" in self.names

    @property
    def esearch(self) -> bool:
        return "ESEARCH" in self.names

    @property
    def objectid(self) -> bool:
        return "OBJECTID" in self.names

    @property
    def preview(self) -> bool:
        return "PREVIEW" in self.names

    @property
    def gmail(self) -> bool:
        """Gmail's extensions (X-GM-LABELS, X-GM-MSGID, X-GM-THRID, X-GM-RAW)."""
        return "X-GM-EXT-1" in self.names

    @property
    def literal_plus(self) -> bool:
        return "LITERAL+" in self.names


def shared_capabilities(capabilities: Capabilities) -> Capabilities:
    """An equal instance shared by every connection that announced the same list."""
    found = _shared.get(capabilities.names)
    if found is not None:
        return found
    if len(_shared) >= SHARED_CAPABILITIES_MAX:
        return capabilities
    return _shared.setdefault(capabilities.names, capabilities)
