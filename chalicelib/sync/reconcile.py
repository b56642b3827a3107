"""Change detection: ``checkpoint + server snapshot -> events + new checkpoint``. Pure.

No socket, no AWS: the IMAP adapter builds a :class:`MailboxSnapshot` (what the server
says now, or what changed since the checkpoint's HIGHESTMODSEQ), this module decides
what happened, and the caller publishes the events *before* storing the new checkpoint.

Decision table for one mailbox::

    checkpoint        snapshot UIDVALIDITY   result
    ----------------  ---------------------  ------------------------------------------------
    None              any                    silent baseline (account's first sync): no events
    present           different              one mailboxReset, messageNew for each message that
                                             arrived since the last sync (by Message-ID, else
                                             INTERNALDATE: :mod:`~chalicelib.sync.known_messages`),
                                             the rest re-baselined silently under their new UIDs;
                                             refused (:class:`UidValidityUnstableError`) past
                                             the limit of :mod:`~chalicelib.sync.reset_guard`
    present           same                   messageDeleted / messageUpdated / messageNew

Two snapshot shapes, one rule set:
- *full* (no CONDSTORE, baselines, resets): ``present`` is every UID on the server and
  ``changed`` holds flags for a window of them (every one for a baseline);
- *incremental* (CONDSTORE/QRESYNC): ``present`` is None, ``changed`` holds what
  ``CHANGEDSINCE`` returned and ``vanished`` what ``VANISHED (EARLIER)`` returned.

Rules the property tests hold us to (replaying the events on the old state gives the new
state):
- a message is *new* only if its UID is >= the checkpoint's UIDNEXT (UIDs are never
  reused within one UIDVALIDITY, so anything below was already accounted for) and the
  adapter could fetch its listing; a UID that vanished before its listing was fetched
  (a "phantom": absent from the server's UIDs) produces no event at all and is skipped for
  good. A UID still listed but not returned by a FETCH never gets here: the adapter holds
  the pass at it and retries (:mod:`chalicelib.sync.fetch_retries`);
- a message is *deleted* only if it was known; servers may report a superset in
  ``VANISHED (EARLIER)`` (RFC 7162 allows it), so that set is intersected with ``uids``;
- a message is *updated* only if it is kept and its flags or labels differ; the event
  lists exactly the added and deleted names;
- ``\\Recent`` is ignored (per session, Dovecot sets it on whichever session sees mail first).
- the stored HIGHESTMODSEQ never goes down (a partial pass or a FETCH-derived value may be
  older) except after a full flag resync (``flags_resynced``): a server whose
  HIGHESTMODSEQ went down (Dovecot after an index rebuild) has renumbered its modseqs, so
  keeping the old, higher value would make every later ``CHANGEDSINCE`` miss changes.

Event ids are built from the facts of the change (account and its incarnation, path,
UIDVALIDITY, UID and, for updates, the checkpoint revision and the resulting flags), so the
same change seen twice (restart, lease hand-over) gets the same id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib.events.model import Event, EventType, event_id
from chalicelib.incarnations import LEGACY, scoped
from chalicelib.message_ids import MessageRef, encode_message_id
from chalicelib.sync.checkpoint import SESSION_FLAGS, MailboxCheckpoint, MessageState, group_by_name
from chalicelib.sync.known_messages import KnownMessages, MessageIdentity, arrivals
from chalicelib.sync.reset_guard import UidValidityUnstableError, reset_allowed, with_reset
from chalicelib.sync.uidset import EMPTY, UidSet

MessageIdFunction = Callable[[str, int, int], str]


def default_message_id(path: str, uidvalidity: int, uid: int) -> str:
    """The REST API's message id for this message (a codec, no I/O), so events and API agree."""
    return encode_message_id(MessageRef(path, uidvalidity, uid))


@dataclass(frozen=True)
class MailboxSnapshot:
    path: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int | None = None
    changed: Mapping[int, MessageState] = field(default_factory=dict)
    present: UidSet | None = None
    vanished: UidSet = EMPTY
    listings: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    # True: a bounded pass over a backlog (see :mod:`chalicelib.sync.passes`); sync again.
    partial: bool = False
    # True: ``changed`` holds the flags of every UID in ``present`` (a full flag resync after
    # HIGHESTMODSEQ went down), so ``highestmodseq`` is stored as is, even if lower.
    flags_resynced: bool = False
    # New UIDs listed but not returned by a FETCH, held for the next pass: attempts so far
    # (see :mod:`chalicelib.sync.fetch_retries`; such a snapshot is partial).
    fetch_attempts: Mapping[int, int] = field(default_factory=dict)
    # Message-ID digest and INTERNALDATE of UIDs: new messages, a baseline's newest, every
    # message after a UIDVALIDITY change (what :func:`~chalicelib.sync.known_messages.arrivals` reads).
    identities: Mapping[int, MessageIdentity] = field(default_factory=dict)
    # Unix seconds, read before the server was asked: mail after it is not in this snapshot.
    taken_at: int | None = None

    @property
    def is_full(self) -> bool:
        return self.present is not None


@dataclass(frozen=True)
class Reconciliation:
    events: list[Event]
    checkpoint: MailboxCheckpoint
    changed: bool


def _clean(state: MessageState) -> MessageState:
    return MessageState(flags=state.flags - SESSION_FLAGS, labels=state.labels)


def _baseline(snapshot: MailboxSnapshot, revision: int) -> MailboxCheckpoint:
    if snapshot.present is None:
        raise ValueError("a baseline needs a full snapshot (every UID on the server)")
    missing = snapshot.present - UidSet(snapshot.changed)
    if missing:
        raise ValueError(f"a baseline needs the flags of every message; missing {missing.to_imap()[:80]}")
    states = {uid: _clean(snapshot.changed[uid]) for uid in snapshot.present}
    return MailboxCheckpoint(
        path=snapshot.path, uidvalidity=snapshot.uidvalidity,
        uidnext=max(snapshot.uidnext, (snapshot.present.max() or 0) + 1),
        highestmodseq=snapshot.highestmodseq, uids=snapshot.present,
        flags=group_by_name((uid, s.flags) for uid, s in states.items()),
        labels=group_by_name((uid, s.labels) for uid, s in states.items() if s.labels),
        revision=revision, known=KnownMessages.of_folder(snapshot.identities, snapshot.present),
        synced_at=snapshot.taken_at)


def _event(account: str, incarnation: str, kind: EventType, path: str, special_use: str | None,
           data: dict[str, Any], *identity: object) -> Event:
    return Event(id=event_id(scoped(account, incarnation), path, kind, *identity), account=account, event=kind,
                 path=path, specialUse=special_use, data=data)


def _name_changes(old: frozenset[str], new: frozenset[str]) -> dict[str, list[str]]:
    return {"added": sorted(new - old), "deleted": sorted(old - new), "value": sorted(new)}


def _replace(per_name: Mapping[str, UidSet], drop: UidSet, states: Mapping[int, frozenset[str]]) -> dict[str, UidSet]:
    """Per-name sets with ``drop`` removed and the UIDs in ``states`` set to their names."""
    fresh = group_by_name(states.items())
    names = set(per_name) | set(fresh)
    return {name: (per_name.get(name, EMPTY) - drop) | fresh.get(name, EMPTY) for name in names}


def reconcile_mailbox(account: str, checkpoint: MailboxCheckpoint | None, snapshot: MailboxSnapshot, *,
                      special_use: str | None = None, incarnation: str = LEGACY,
                      message_id: MessageIdFunction = default_message_id) -> Reconciliation:
    """Compare a mailbox's checkpoint with what the server reports; see the module docstring."""
    path = snapshot.path
    if checkpoint is None:
        return Reconciliation([], _baseline(snapshot, revision=1), changed=True)
    if checkpoint.uidvalidity != snapshot.uidvalidity:
        return _reset(account, checkpoint, snapshot, special_use, incarnation, message_id)

    uidvalidity = checkpoint.uidvalidity
    known = checkpoint.uids
    reported = UidSet(snapshot.changed)
    if snapshot.present is not None:
        gone = known - snapshot.present
        candidates = snapshot.present.at_least(checkpoint.uidnext)
    else:
        gone = known & snapshot.vanished
        candidates = reported.at_least(checkpoint.uidnext) - snapshot.vanished
    new = UidSet(uid for uid in candidates if uid in snapshot.changed and uid in snapshot.listings)
    kept = known - gone
    events: list[Event] = []
    for uid in gone:
        events.append(_event(account, incarnation, "messageDeleted", path, special_use,
                             {"id": message_id(path, uidvalidity, uid), "uid": uid},
                             uidvalidity, uid))
    updated: dict[int, MessageState] = {}
    for uid in reported & kept:
        before, after = checkpoint.state_of(uid), _clean(snapshot.changed[uid])
        if after.labels is None:
            after = MessageState(flags=after.flags, labels=before.labels)
        updated[uid] = after
        changes: dict[str, Any] = {}
        if after.flags != before.flags:
            changes["flags"] = _name_changes(before.flags, after.flags)
        if after.labels != before.labels:
            changes["labels"] = _name_changes(before.labels or frozenset(), after.labels or frozenset())
        if changes:
            events.append(_event(account, incarnation, "messageUpdated", path, special_use,
                                 {"id": message_id(path, uidvalidity, uid), "uid": uid, "changes": changes},
                                 uidvalidity, uid, checkpoint.revision, sorted(after.flags),
                                 sorted(after.labels or ())))
    for uid in new:
        state = updated[uid] = _clean(snapshot.changed[uid])
        # The flags in the event are the ones the checkpoint stores, so a consumer that
        # mirrors the mailbox stays exactly in step with the next updates.
        data = {**snapshot.listings[uid], "id": message_id(path, uidvalidity, uid), "uid": uid,
                "flags": sorted(state.flags)}
        if state.labels is not None:
            data["labels"] = sorted(state.labels)
        events.append(_event(account, incarnation, "messageNew", path, special_use, data, uidvalidity, uid))

    touched = UidSet(updated) | gone
    known_messages = checkpoint.known.extended(
        snapshot.identities[uid].digest if uid in snapshot.identities else None for uid in new)
    highest_seen = max(candidates.max() or 0, new.max() or 0)
    result = MailboxCheckpoint(
        path=path, uidvalidity=uidvalidity,
        uidnext=max(checkpoint.uidnext, snapshot.uidnext, highest_seen + 1),
        highestmodseq=(snapshot.highestmodseq if snapshot.flags_resynced and snapshot.highestmodseq is not None
                       else _max_modseq(checkpoint.highestmodseq, snapshot.highestmodseq)),
        uids=kept | new,
        flags=_replace(checkpoint.flags, touched, {u: s.flags for u, s in updated.items()}),
        labels=_replace(checkpoint.labels, touched, {u: s.labels for u, s in updated.items() if s.labels}),
        revision=checkpoint.revision, known=known_messages, synced_at=checkpoint.synced_at,
        resets=checkpoint.resets)
    if result == checkpoint:
        return Reconciliation([], checkpoint, changed=False)
    # The sync time moves only with a write that has something else to store (a sync that
    # found nothing writes nothing), and not for a partial pass: mail past it is not known yet.
    synced_at = checkpoint.synced_at if snapshot.partial or snapshot.taken_at is None else snapshot.taken_at
    return Reconciliation(events, replace(result, revision=checkpoint.revision + 1, synced_at=synced_at),
                          changed=True)


def _reset(account: str, checkpoint: MailboxCheckpoint, snapshot: MailboxSnapshot, special_use: str | None,
           incarnation: str, message_id: MessageIdFunction) -> Reconciliation:
    """A new UIDVALIDITY: ``mailboxReset``, then ``messageNew`` for what arrived since the last sync."""
    path, uidvalidity = snapshot.path, snapshot.uidvalidity
    now = snapshot.taken_at
    if now is not None and not reset_allowed(checkpoint.resets, now):
        raise UidValidityUnstableError(path, uidvalidity)
    events = [_event(account, incarnation, "mailboxReset", path, special_use,
                     {"path": path, "uidValidity": str(uidvalidity), "prevUidValidity": str(checkpoint.uidvalidity)},
                     checkpoint.uidvalidity, uidvalidity)]
    baseline = _baseline(snapshot, revision=checkpoint.revision + 1)
    for uid in arrivals(checkpoint.known, checkpoint.synced_at, snapshot.identities):
        if uid not in snapshot.listings or uid not in baseline.uids:
            continue  # expunged before its listing was fetched: nothing to announce
        state = baseline.state_of(uid)
        data = {**snapshot.listings[uid], "id": message_id(path, uidvalidity, uid), "uid": uid,
                "flags": sorted(state.flags)}
        if state.labels is not None:
            data["labels"] = sorted(state.labels)
        events.append(_event(account, incarnation, "messageNew", path, special_use, data, uidvalidity, uid))
    resets = with_reset(checkpoint.resets, now) if now is not None else checkpoint.resets
    return Reconciliation(events, replace(baseline, resets=resets), changed=True)


def _max_modseq(old: int | None, new: int | None) -> int | None:
    if old is None or new is None:
        return new if old is None else old
    return max(old, new)


def apply_events(states: dict[int, MessageState], events: list[Event]) -> dict[int, MessageState]:
    """Replay message events on a uid -> state map (what a consumer mirroring the mailbox does)."""
    result = dict(states)
    for event in events:
        if event.event == "messageDeleted":
            result.pop(event.data["uid"], None)
        elif event.event == "messageNew":
            labels = event.data.get("labels")
            result[event.data["uid"]] = MessageState(flags=frozenset(event.data.get("flags", ())),
                                       labels=frozenset(labels) if labels is not None else None)
        elif event.event == "messageUpdated":
            uid = event.data["uid"]
            state = result[uid]
            changes = event.data["changes"]
            flags = frozenset(changes["flags"]["value"]) if "flags" in changes else state.flags
            labels = frozenset(changes["labels"]["value"]) if "labels" in changes else state.labels
            result[uid] = MessageState(flags=flags, labels=labels)
    return result
