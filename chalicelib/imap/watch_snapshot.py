"""Snapshots for the sync core: what the server says about one mailbox relative to a checkpoint.

:func:`take_snapshot` runs on a :class:`~chalicelib.imap.watch.WatchConnection` and returns a
:class:`~chalicelib.sync.reconcile.MailboxSnapshot`; the pure core turns it into events.

How a snapshot is taken (always ``EXAMINE``: read-only, so fetching never sets ``\\Seen``):
- QRESYNC and a checkpoint: ``EXAMINE box (QRESYNC (uidvalidity modseq))`` returns
  changed flags and ``VANISHED (EARLIER)`` in one round trip;
- CONDSTORE only: ``UID FETCH 1:* (FLAGS) (CHANGEDSINCE m)`` plus a UID search for expunges;
- neither (Office 365): a UID search plus flags for the newest ``flags_window`` UIDs;
- no checkpoint or a new UIDVALIDITY: UID search plus flags of everything (baseline),
  and the Message-ID and INTERNALDATE of the newest messages (the checkpoint remembers
  them: :mod:`chalicelib.sync.known_messages`); after a new UIDVALIDITY, of every message,
  and the ones that arrived since the last sync get a listing (they are announced);
- HIGHESTMODSEQ lower than the checkpoint's (Dovecot after an index rebuild): UID search
  plus flags of everything compared with the checkpoint (a full flag resync), after which
  the lower value is stored.
The choice is :func:`chalicelib.sync.snapshot_strategy.snapshot_strategy` (a pure table).
A server that leaves ``[UIDNEXT]`` out of its EXAMINE answer (Courier) gets one derived from
the UIDs the snapshot saw (:func:`_uidnext_from_uids` says why not STATUS). On Courier a
folder that has not been selected read-write before is SELECTed once first (its UIDs are
not stored until then; see the note in :func:`take_snapshot`).
New UIDs (>= the checkpoint's UIDNEXT) then get one listing FETCH with the mail API's
items and parser (:mod:`chalicelib.imap.messages`), so ``messageNew`` carries exactly the
API's listing entry; their flags come from that FETCH so the event and the checkpoint agree.
At most ``limit`` new UIDs (the lowest) are listed per snapshot; the rest are left out of
it entirely and the snapshot is marked partial (the rule is :mod:`chalicelib.sync.passes`).
A listed new UID that the FETCHes do not return stops the pass there and is fetched again
by the next one, at most ``MAX_FETCH_ATTEMPTS`` times, then announced ``partial``
(:mod:`chalicelib.sync.fetch_retries`).
Where the UIDs are known before the flag FETCH (UID SEARCH), deferred ones are not even
fetched for flags; after ``EXAMINE (QRESYNC ...)`` the server has already sent them, and
they are dropped (a backlog of B messages costs B/limit such flag-only re-reads).

Failure modes are the connection's (:class:`~chalicelib.imap.watch.ConnectionLostError`,
:class:`~chalicelib.imap.watch.CommandFailedError`); nothing here keeps state between calls.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from chalicelib.imap import watch_responses as responses
from chalicelib.imap.message_content import ContentRequest, FetchedContent, Sections, section_items
from chalicelib.imap.messages import MessageSummary, body_sections, summary_from_fetch, summary_items
from chalicelib.imap.watch import CommandFailedError, WatchConnection
from chalicelib.imap.wire import parse_fetch_response
from chalicelib.mime.headers import parse_message_id
from chalicelib.mime.tree import parse_headers_only
from chalicelib.sync.checkpoint import MailboxCheckpoint, MessageState
from chalicelib.sync.fetch_retries import FetchRetryPlan, plan_fetch_retries
from chalicelib.sync.known_messages import MAX_REMEMBERED_MESSAGE_IDS, MessageIdentity, arrivals, message_id_digest
from chalicelib.sync.passes import PassPlan, plan_pass
from chalicelib.sync.reconcile import MailboxSnapshot
from chalicelib.sync.reset_guard import UidValidityUnstableError, reset_allowed
from chalicelib.sync.snapshot_strategy import snapshot_strategy
from chalicelib.sync.uidset import UidSet

FETCH_CHUNK_UIDS = 2000
LISTING_CHUNK_UIDS = 200
# Text parts of new messages are fetched in commands of at most about this many octets.
TEXT_FETCH_BATCH_BYTES = 8 * 1024 * 1024
Describe = Callable[[str, int, MessageSummary], dict[str, Any]]


def take_snapshot(connection: WatchConnection, path: str, checkpoint: MailboxCheckpoint | None, *,
                  all_new: bool = False, flags_window: int = 1000, describe: Describe | None = None,
                  content: ContentRequest | None = None, limit: int | None = None,
                  fetch_attempts: Mapping[int, int] | None = None) -> MailboxSnapshot:
    """What the server says about ``path`` relative to ``checkpoint`` (see the module docstring).

    ``all_new``: the mailbox appeared while watched, so every message gets a listing.
    ``describe`` turns a new message's summary into its listing fields (``messageNew`` data);
    ``content``: what else to fetch for it (text, headers; see :mod:`~chalicelib.imap.message_content`).
    ``limit``: most new messages listed; beyond it the snapshot is partial (``snapshot.partial``).
    ``fetch_attempts``: the previous pass's ``snapshot.fetch_attempts`` (new messages a FETCH
    did not return; :mod:`chalicelib.sync.fetch_retries`).
    """
    # Read before the server is asked: anything that arrives later is not in this snapshot.
    taken_at = int(time.time())
    examined = connection.examine(path, checkpoint)
    status = responses.select_status(examined)
    if connection.courier and (checkpoint is None or checkpoint.uidvalidity != status.uidvalidity):
        # Courier-IMAP (5.0) stores a folder's UIDs in a courierimapuiddb file that only a
        # read-write SELECT writes. A folder never selected so (made by maildirmake, filled by
        # a delivery agent) answers every EXAMINE and STATUS with a new UIDVALIDITY taken from
        # the clock, so each look would be a reset. One SELECT (nothing fetched: no flag
        # changes; it claims \Recent, as any client's would) makes the UIDs permanent.
        connection.select_read_write(path)
        examined = connection.examine(path, checkpoint)
        status = responses.select_status(examined)
    if status.uidvalidity is None:
        raise CommandFailedError(f"EXAMINE {path!r} reported no UIDVALIDITY")
    present: UidSet | None = None
    vanished = UidSet()
    plan = PassPlan(listed=UidSet())  # baselines and resets list nothing
    resync = False
    reset = checkpoint is not None and checkpoint.uidvalidity != status.uidvalidity
    identities: dict[int, MessageIdentity] = {}
    strategy = snapshot_strategy(checkpoint, status.uidvalidity, status.highestmodseq,
                                 qresync=connection.capabilities.qresync, condstore=connection.capabilities.condstore)
    if reset and checkpoint is not None and not reset_allowed(checkpoint.resets, taken_at):
        # Refused before the whole folder is read: a server that changes UIDVALIDITY on every
        # session would otherwise cost a full read on every retry (the sync core refuses too).
        raise UidValidityUnstableError(path, status.uidvalidity)
    if checkpoint is None or strategy == "baseline":
        present = _search_all(connection)
        if all_new:
            plan = plan_pass(present, limit, None)
        fetched = _fetch_states(connection, present - plan.deferred)
        if reset:  # every message, to tell the ones that arrived since the last sync
            assert checkpoint is not None
            identities = _fetch_identities(connection, present)
            plan = PassPlan(listed=UidSet(arrivals(checkpoint.known, checkpoint.synced_at, identities)))
        elif not all_new:  # a first baseline: the newest, to be remembered
            identities = _fetch_identities(connection, UidSet(sorted(present)[-MAX_REMEMBERED_MESSAGE_IDS:]))
    elif strategy == "flag_resync":
        # What EXAMINE (QRESYNC ...) already sent is ignored; expunges come from ``present``.
        resync = True
        present = _search_all(connection)
        plan = plan_pass(present.at_least(checkpoint.uidnext), limit, checkpoint.highestmodseq)
        fetched = _fetch_states(connection, present - plan.deferred)
    elif strategy == "qresync":
        fetched = responses.fetched_states(examined)
        vanished = responses.vanished_uids(examined)
        plan = plan_pass(UidSet(fetched).at_least(checkpoint.uidnext) - vanished, limit,
                         checkpoint.highestmodseq)
    elif strategy == "changedsince":
        assert checkpoint.highestmodseq is not None
        present = _search_all(connection)
        plan = plan_pass(present.at_least(checkpoint.uidnext), limit, checkpoint.highestmodseq)
        fetched = _changed_since(connection, checkpoint.highestmodseq, below=plan.uidnext)
    else:
        present = _search_all(connection)
        plan = plan_pass(present.at_least(checkpoint.uidnext), limit, checkpoint.highestmodseq)
        window = UidSet(sorted(present)[-flags_window:]) | plan.listed
        fetched = _fetch_states(connection, window - plan.deferred)
    changed = {uid: f.state for uid, f in fetched.items() if uid not in plan.deferred}
    # A listed UID without flags is not taken for a phantom: it was listed as present
    # (Exchange answers nothing for a UID that arrived a moment ago). It is retried.
    summaries = _fetch_summaries(connection, plan.listed, changed, content)
    listings: dict[int, dict[str, Any]] = {uid: describe(path, status.uidvalidity, summary) if describe else {}
                                           for uid, summary in summaries.items()}
    for uid, summary in summaries.items():
        identities[uid] = _identity(summary.internal_date, summary.headers)
    # After a reset a new message the FETCH did not return is announced at once: a held
    # pass would continue under the new UIDVALIDITY and take the known messages for new.
    retries = (FetchRetryPlan(give_up=plan.listed - UidSet(summaries)) if reset
               else plan_fetch_retries(plan.listed, UidSet(summaries), fetch_attempts or {}))
    for uid in retries.give_up:  # announced with what is known, never silently skipped
        changed.setdefault(uid, MessageState())
        listings[uid] = {"partial": True}
    if retries.stop_at is not None:
        # Stop the pass at the first held UID, as a bounded pass stops at its first deferred one.
        seen = present if present is not None else UidSet(changed)
        plan = PassPlan(listed=plan.listed - plan.listed.at_least(retries.stop_at),
                        deferred=plan.deferred | seen.at_least(retries.stop_at),
                        uidnext=retries.stop_at,
                        highestmodseq=checkpoint.highestmodseq if checkpoint else None)
    modseqs = [f.modseq for f in fetched.values() if f.modseq is not None]
    highest = status.highestmodseq if status.highestmodseq is not None else (max(modseqs) if modseqs else None)
    uidnext = status.uidnext if status.uidnext is not None else _uidnext_from_uids(checkpoint, status, present,
                                                                                   fetched)
    return plan.narrow(MailboxSnapshot(path=path, uidvalidity=status.uidvalidity, uidnext=uidnext,
                                       highestmodseq=highest, changed=changed, present=present,
                                       vanished=vanished, listings=listings, flags_resynced=resync,
                                       fetch_attempts=retries.attempts, identities=identities,
                                       taken_at=taken_at))


def _uidnext_from_uids(checkpoint: MailboxCheckpoint | None, status: responses.MailboxStatus,
                       present: UidSet | None, fetched: dict[int, responses.FetchedState]) -> int:
    """UIDNEXT for a server whose EXAMINE answer leaves out ``[UIDNEXT]``.

    Courier-IMAP (5.0) sends ``[UIDVALIDITY]`` but no ``[UIDNEXT]``, which RFC 3501 allows.
    Not asked with STATUS: STATUS also counts mail that arrived after the EXAMINE, which our
    UID SEARCH may not show yet (the server has not sent its EXISTS), and a UIDNEXT past such
    a message would skip it for good. One past the highest UID this snapshot saw (never
    below the checkpoint's) can only be too low, and a low UIDNEXT costs nothing: the sync
    core takes the highest UID it sees into account, and the next sync looks from there.
    """
    seen = present.max() if present is not None else None
    highest = max(seen or 0, max(fetched, default=0))
    floor = checkpoint.uidnext if checkpoint is not None and checkpoint.uidvalidity == status.uidvalidity else 1
    return max(highest + 1, floor)


def _search_all(connection: WatchConnection) -> UidSet:
    return responses.searched_uids(connection.command(b"UID SEARCH RETURN (ALL) ALL" if connection.capabilities.esearch
                                                      else b"UID SEARCH ALL"))


def _fetch_states(connection: WatchConnection, uids: UidSet) -> dict[int, responses.FetchedState]:
    items = (b"(UID FLAGS" + (b" MODSEQ" if connection.capabilities.condstore else b"")
             + (b" X-GM-LABELS" if connection.capabilities.gmail else b""))
    states: dict[int, responses.FetchedState] = {}
    for chunk in _chunks(uids, FETCH_CHUNK_UIDS):
        states.update(responses.fetched_states(connection.command(b"UID FETCH " + chunk.to_imap().encode() + b" "
                                                                  + items + b")", fetching=chunk)))
    return states


def _fetch_identities(connection: WatchConnection, uids: UidSet) -> dict[int, MessageIdentity]:
    """Message-ID digest and INTERNALDATE of ``uids`` (about 100 octets a message)."""
    identities: dict[int, MessageIdentity] = {}
    for chunk in _chunks(uids, FETCH_CHUNK_UIDS):
        found = connection.command(b"UID FETCH " + chunk.to_imap().encode()
                                   + b" (UID INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])", fetching=chunk)
        for _, uid, item in _fetched_in(found, chunk):
            summary = summary_from_fetch(uid, item)
            identities[uid] = _identity(summary.internal_date, summary.headers)
    return identities


def _fetched_in(found: Iterable[Any], chunk: UidSet) -> Iterator[tuple[Any, int, dict[bytes, Any]]]:
    """(response, UID, items) of each FETCH answer in ``found`` for a UID of ``chunk``;
    a server's unsolicited FETCH of another message is not ours to read here."""
    for response in found:
        if response.kind != "FETCH":
            continue
        for item in parse_fetch_response(response.parts).values():
            uid = item.get(b"UID")
            if uid is not None and uid in chunk:
                yield response, uid, item


def _identity(internal_date: datetime | None, headers: bytes) -> MessageIdentity:
    message_id = parse_message_id(parse_headers_only(headers).get("message-id")) if headers else None
    return MessageIdentity(digest=message_id_digest(message_id) if message_id else None,
                           internal_date=int(internal_date.timestamp()) if internal_date is not None else None)


def _changed_since(connection: WatchConnection, modseq: int,
                   below: int | None = None) -> dict[int, responses.FetchedState]:
    items = b"(UID FLAGS MODSEQ" + (b" X-GM-LABELS" if connection.capabilities.gmail else b"") + b")"
    uids = b"1:%d" % (below - 1) if below is not None else b"1:*"
    return responses.fetched_states(connection.command(b"UID FETCH " + uids + b" " + items
                                                       + b" (CHANGEDSINCE %d)" % modseq))


def _fetch_summaries(connection: WatchConnection, uids: UidSet, changed: dict[int, MessageState],
                     content: ContentRequest | None = None) -> dict[int, MessageSummary]:
    """The listing FETCH of the mail API (same items, same parsing) for new messages,
    plus what ``content`` asks for.

    Their flags replace what the change FETCH said, so the event and the checkpoint agree.
    """
    content = None if content is None or content.empty else content
    header_item = {"header_item": content.header_item()} if content else {}
    items = [*summary_items(connection, **header_item), *(["MODSEQ"] if connection.capabilities.condstore else []),
             *(content.speculative_items() if content else [])]
    summaries: dict[int, MessageSummary] = {}
    for chunk in _chunks(uids, LISTING_CHUNK_UIDS):
        found = connection.command(b"UID FETCH " + chunk.to_imap().encode() + b" (" + " ".join(items).encode()
                                   + b")", fetching=chunk)
        fetched: dict[int, dict[str, bytes]] = {}
        for response, uid, item in _fetched_in(found, chunk):
            summaries[uid] = summary_from_fetch(uid, item)
            fetched[uid] = body_sections(item)
            state = responses.fetched_states([response]).get(uid)
            if state is not None:
                changed[uid] = state.state
        if content is not None:
            _fetch_text(connection, content, {uid: summaries[uid] for uid in fetched}, fetched)
            for uid, sections in fetched.items():
                summaries[uid] = dataclasses.replace(summaries[uid], content=FetchedContent(content, sections))
    return summaries


def _fetch_text(connection: WatchConnection, content: ContentRequest, summaries: dict[int, MessageSummary],
                fetched: dict[int, dict[str, bytes]]) -> None:
    """Complete ``fetched`` with the text parts the listing FETCH did not bring: one
    UID FETCH per distinct list of missing sections (usually one for all)."""
    by_missing: dict[Sections, list[int]] = {}
    for uid, summary in summaries.items():
        fetched[uid], missing = content.plan_text(summary, fetched[uid])
        if missing:
            by_missing.setdefault(missing, []).append(uid)
    for missing, uids in by_missing.items():
        per_command = max(1, TEXT_FETCH_BATCH_BYTES // content.fetch_bound(missing))
        for start in range(0, len(uids), per_command):
            _fetch_sections(connection, missing, UidSet(uids[start:start + per_command]), fetched)


def _fetch_sections(connection: WatchConnection, missing: Sections, wanted: UidSet,
                    fetched: dict[int, dict[str, bytes]]) -> None:
    found = connection.command(b"UID FETCH " + wanted.to_imap().encode() + b" (UID "
                               + " ".join(section_items(missing)).encode() + b")", fetching=wanted)
    for response in found:
        if response.kind != "FETCH":
            continue
        for item in parse_fetch_response(response.parts).values():
            uid = item.get(b"UID")
            if uid in fetched:
                for section, data in body_sections(item).items():
                    # A part fetched from octet n continues the prefix the guess brought.
                    fetched[uid][section] = fetched[uid].get(section, b"") + data


def _chunks(uids: UidSet, size: int) -> Iterable[UidSet]:
    batch: list[int] = []
    for uid in uids:
        batch.append(uid)
        if len(batch) == size:
            yield UidSet(batch)
            batch = []
    if batch:
        yield UidSet(batch)
