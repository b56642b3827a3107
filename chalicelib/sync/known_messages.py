"""Which messages of a mailbox were known at the last sync, by content, not UID. Pure.

UIDs only name a message within one UIDVALIDITY. When the server changes it (a folder
re-created, an index rebuilt, a migration), every UID is new, and the checkpoint can no
longer tell mail it has announced from mail that arrived since. So a checkpoint also
remembers :class:`KnownMessages`: 32-bit digests of the Message-IDs of its newest
messages, in UID order, and the time of its last complete sync (``synced_at``). After a
reset :func:`arrivals` decides, for each message on the server, from what EXAMINE can
fetch cheaply (its Message-ID and INTERNALDATE, a :class:`MessageIdentity`)::

    the message                        remembered set   verdict
    ---------------------------------  ---------------  ---------------------------------
    its Message-ID digest remembered   any              known (re-baselined silently)
    a Message-ID not remembered        complete         arrived (messageNew)
    a Message-ID not remembered        truncated        INTERNALDATE decides (below)
    no Message-ID                      any              INTERNALDATE decides (below)
    INTERNALDATE at or after ``synced_at``              arrived
    INTERNALDATE before it, unknown, or no synced_at    known

"At or after": both are whole seconds, and a message of the very second the last sync
began may have arrived after its EXAMINE; a duplicate ``messageNew`` beats a lost one.
A digest seen k times on the server and remembered j times: the first j are known, the
rest arrived (the same message delivered twice, a copy of a known message).

Size: 4 bytes per remembered message, incompressible, in every write of the checkpoint.
At most :data:`MAX_REMEMBERED_MESSAGE_IDS` are kept (the newest by UID; older ones are
dropped and the set marked truncated), so a large mailbox costs at most ~20 KB more per
write. A truncated set still recognises the newest mail by Message-ID, which is what the
INTERNALDATE fallback alone gets wrong when the server's clock and ours disagree.

Limits (accepted): digests of expunged messages are not dropped until the next baseline,
so a message expunged and then brought back (from Trash) while the watcher was stopped
across a reset counts as known; in a truncated set, an old message moved into the folder
across a reset keeps its old INTERNALDATE and counts as known; two Message-IDs with the
same 32-bit digest (about 1 in 2**32 / 5,000 ~ 860,000 per new message) hide the new one.
Checkpoints written before digests were kept have none and no ``synced_at``: every
message counts as known, as before (a silent re-baseline).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from chalicelib.varint import read_varint, write_varint

# Enough for most folders whole (an INBOX of a few thousand messages), small enough that
# the checkpoint, rewritten on every change, grows by at most 20 KB (20 write units).
MAX_REMEMBERED_MESSAGE_IDS = 5_000
DIGEST_BYTES = 4


def message_id_digest(message_id: str) -> int:
    """The 32-bit digest remembered for a Message-ID (surrounding blanks ignored)."""
    return int.from_bytes(hashlib.blake2b(message_id.strip().encode("utf-8", "replace"),
                                          digest_size=DIGEST_BYTES).digest(), "big")


@dataclass(frozen=True)
class MessageIdentity:
    """What identifies a message across a UIDVALIDITY change."""

    digest: int | None  # of its Message-ID; None: it has none
    internal_date: int | None  # INTERNALDATE, Unix seconds; None: the server sent none


@dataclass(frozen=True, slots=True)
class KnownMessages:
    """Message-ID digests of the newest known messages, in UID order, packed 4 bytes each.

    ``complete``: every known message that has a Message-ID is in ``digests`` (none were
    dropped for the size limit, and the set was built from the whole folder).
    """

    digests: bytes = b""
    complete: bool = False

    def __len__(self) -> int:
        return len(self.digests) // DIGEST_BYTES

    def counts(self) -> Counter[int]:
        return Counter(int.from_bytes(self.digests[i:i + DIGEST_BYTES], "big")
                       for i in range(0, len(self.digests), DIGEST_BYTES))

    def extended(self, digests: Iterable[int | None]) -> KnownMessages:
        """With the digests of new messages (in UID order) added; the oldest dropped past the limit."""
        packed = b"".join(d.to_bytes(DIGEST_BYTES, "big") for d in digests if d is not None)
        if not packed:
            return self
        return _bounded(self.digests + packed, self.complete)

    @classmethod
    def of_folder(cls, identities: Mapping[int, MessageIdentity], present: Iterable[int]) -> KnownMessages:
        """The set for a folder baselined now: ``identities`` of (the newest of) ``present``."""
        uids = sorted(present)
        covered = all(uid in identities for uid in uids)
        packed = b"".join(identities[uid].digest.to_bytes(DIGEST_BYTES, "big")  # type: ignore[union-attr]
                          for uid in uids if uid in identities and identities[uid].digest is not None)
        return _bounded(packed, covered)

    def encode(self, out: bytearray) -> None:
        write_varint(out, len(self) * 2 + int(self.complete))
        out += self.digests

    @classmethod
    def decode_from(cls, data: bytes | memoryview, position: int) -> tuple[KnownMessages, int]:
        header, position = read_varint(data, position)
        end = position + (header // 2) * DIGEST_BYTES
        if end > len(data):
            raise ValueError("truncated message-id digests")
        return cls(bytes(data[position:end]), bool(header & 1)), end


# What a checkpoint written before digests were kept has: nothing, and not complete.
UNKNOWN = KnownMessages()


def _bounded(packed: bytes, complete: bool) -> KnownMessages:
    limit = MAX_REMEMBERED_MESSAGE_IDS * DIGEST_BYTES
    if len(packed) > limit:
        return KnownMessages(packed[-limit:], complete=False)
    return KnownMessages(packed, complete)


def arrivals(known: KnownMessages, synced_at: int | None, identities: Mapping[int, MessageIdentity]) -> list[int]:
    """The UIDs (ascending) of messages that arrived since the last sync; see the module's table."""
    remaining = known.counts()
    arrived = []
    for uid in sorted(identities):
        identity = identities[uid]
        if identity.digest is not None and remaining[identity.digest] > 0:
            remaining[identity.digest] -= 1
            continue
        if identity.digest is not None and known.complete:
            arrived.append(uid)
        elif synced_at is not None and identity.internal_date is not None and identity.internal_date >= synced_at:
            arrived.append(uid)
    return arrived
