"""What the watcher remembers about one mailbox between two looks at the server.

A :class:`MailboxCheckpoint` is the state every change is computed against: the
mailbox's UIDVALIDITY, the UIDNEXT below which every UID has been accounted for, the
HIGHESTMODSEQ it was last synced to (CONDSTORE servers), the set of UIDs that exist,
and for each flag (and Gmail label) the set of UIDs carrying it. For a UIDVALIDITY
change it also keeps what identifies its messages without UIDs (Message-ID digests, the
time of the last complete sync: :mod:`chalicelib.sync.known_messages`) and the times of
its recent resets (:mod:`chalicelib.sync.reset_guard`).

Invariants:
- every per-flag/per-label set is a subset of ``uids`` and is never empty (absent key
  = nobody has the flag);
- ``uids`` holds only UIDs below ``uidnext``;
- ``revision`` grows by one with each committed change; stores refuse to write a
  revision that is not exactly the next one, so a checkpoint never goes backwards.
- ``\\Recent`` is never stored: it is per-session state, not a message property.

:meth:`MailboxCheckpoint.encode_sets` packs all sets into one zlib-compressed blob
(varint-encoded ranges): a 100,000-message mailbox fits in tens of KB even with
randomly scattered flags (measured in tests/unit/test_sync_checkpoint.py), plus 4 bytes per
remembered Message-ID (at most ~20 KB). Version 1 blobs (no digests) still decode.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from chalicelib.sync.known_messages import UNKNOWN, KnownMessages
from chalicelib.sync.uidset import EMPTY, UidSet
from chalicelib.varint import read_varint, write_varint

SESSION_FLAGS = frozenset({"\\Recent"})
_BLOB_VERSION = 2  # 1: without the known messages, sync time and resets
# Most mailboxes have no labels and many no flags: one shared empty mapping serves them all
# (a watcher holds six or more checkpoints per account, thousands of accounts).
_NO_NAMES: Mapping[str, UidSet] = MappingProxyType({})


def _without_empty(per_name: Mapping[str, UidSet]) -> Mapping[str, UidSet]:
    kept = {name: uids for name, uids in per_name.items() if uids}
    return MappingProxyType(kept) if kept else _NO_NAMES


@dataclass(frozen=True)
class MessageState:
    """The mutable facts of one message: its flags (system flags and keywords) and labels."""

    flags: frozenset[str] = frozenset()
    labels: frozenset[str] | None = None  # None: the server has no labels (everything but Gmail)


def _invert(per_name: Mapping[str, UidSet], uid: int) -> frozenset[str]:
    return frozenset(name for name, uids in per_name.items() if uid in uids)


def group_by_name(states: Iterable[tuple[int, frozenset[str]]]) -> dict[str, UidSet]:
    """uid -> names  ==>  name -> UidSet."""
    collected: dict[str, list[int]] = {}
    for uid, names in states:
        for name in names:
            collected.setdefault(name, []).append(uid)
    return {name: UidSet(uids) for name, uids in collected.items()}


@dataclass(frozen=True, slots=True)
class MailboxCheckpoint:
    path: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int | None = None
    uids: UidSet = EMPTY
    flags: Mapping[str, UidSet] = field(default_factory=dict)
    labels: Mapping[str, UidSet] = field(default_factory=dict)
    revision: int = 0
    known: KnownMessages = UNKNOWN  # Message-ID digests of the newest messages
    synced_at: int | None = None  # Unix seconds: when the last complete sync began
    resets: tuple[int, ...] = ()  # Unix seconds of the recent accepted UIDVALIDITY changes

    def __post_init__(self) -> None:
        object.__setattr__(self, "flags", _without_empty(self.flags))
        object.__setattr__(self, "labels", _without_empty(self.labels))

    @classmethod
    def empty(cls, path: str, uidvalidity: int) -> MailboxCheckpoint:
        """A checkpoint for a mailbox that appeared while watched: all of its mail is new."""
        return cls(path=path, uidvalidity=uidvalidity, uidnext=1, known=KnownMessages(complete=True))

    def matches_status(self, uidvalidity: int | None, uidnext: int | None, highestmodseq: int | None,
                       messages: int | None) -> bool:
        """True if a STATUS (or NOTIFY) report shows nothing new: every value it has is ours.

        A report with no comparable value never matches (it must be looked at).
        """
        pairs = [(uidvalidity, self.uidvalidity), (uidnext, self.uidnext), (highestmodseq, self.highestmodseq),
                 (messages, len(self.uids))]
        reported = [(theirs, ours) for theirs, ours in pairs if theirs is not None]
        return bool(reported) and all(theirs == ours for theirs, ours in reported)

    def modseq_went_back(self, reported: int | None) -> bool:
        """True if the server now reports a lower HIGHESTMODSEQ than the one synced to.

        Dovecot does this after an index rebuild (``doveadm force-resync``, a lost
        ``dovecot.index``) while keeping UIDVALIDITY: ``CHANGEDSINCE`` our value would then
        skip every flag change whose new modseq is below it. The caller treats it like a
        CONDSTORE reset: a full flag resync, after which the lower value is stored.
        """
        return self.highestmodseq is not None and reported is not None and reported < self.highestmodseq

    def state_of(self, uid: int) -> MessageState:
        labels = _invert(self.labels, uid) if self.labels else None
        return MessageState(flags=_invert(self.flags, uid), labels=labels)

    def states(self) -> dict[int, MessageState]:
        """Every known message's state (tests and small mailboxes; O(messages x flags))."""
        return {uid: self.state_of(uid) for uid in self.uids}

    # -- blob ------------------------------------------------------------------------------

    def encode_sets(self) -> bytes:
        """``uids``, ``flags``, ``labels``, ``known``, ``synced_at`` and ``resets`` as one compressed blob."""
        out = bytearray([_BLOB_VERSION])
        out += self.uids.encode()
        for mapping in (self.flags, self.labels):
            write_varint(out, len(mapping))
            for name in sorted(mapping):
                raw = name.encode("utf-8")
                write_varint(out, len(raw))
                out += raw
                out += mapping[name].encode()
        self.known.encode(out)
        write_varint(out, 0 if self.synced_at is None else self.synced_at + 1)
        write_varint(out, len(self.resets))
        for at in self.resets:
            write_varint(out, at)
        return zlib.compress(bytes(out), 6)

    @staticmethod
    def decode_sets(blob: bytes) -> DecodedSets:
        data = memoryview(zlib.decompress(blob))
        if not data or data[0] not in (1, _BLOB_VERSION):
            raise ValueError("unknown checkpoint blob version")
        uids, position = UidSet.decode_from(data, 1)
        mappings: list[dict[str, UidSet]] = []
        for _ in range(2):
            count, position = read_varint(data, position)
            mapping: dict[str, UidSet] = {}
            for _ in range(count):
                size, position = read_varint(data, position)
                name = bytes(data[position:position + size]).decode("utf-8")
                mapping[name], position = UidSet.decode_from(data, position + size)
            mappings.append(mapping)
        if data[0] == 1:
            return DecodedSets(uids, mappings[0], mappings[1])
        known, position = KnownMessages.decode_from(data, position)
        synced, position = read_varint(data, position)
        count, position = read_varint(data, position)
        resets = []
        for _ in range(count):
            at, position = read_varint(data, position)
            resets.append(at)
        return DecodedSets(uids, mappings[0], mappings[1], known, synced - 1 if synced else None, tuple(resets))


class DecodedSets(NamedTuple):
    """What :meth:`MailboxCheckpoint.encode_sets` packs (a version 1 blob: the defaults)."""

    uids: UidSet
    flags: dict[str, UidSet]
    labels: dict[str, UidSet]
    known: KnownMessages = UNKNOWN
    synced_at: int | None = None
    resets: tuple[int, ...] = ()
