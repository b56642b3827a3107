"""Property tests: random mailbox histories, synced through both snapshot shapes.

A model server (two mailboxes, per-message MODSEQ, remembered expunges) takes random
appends, flag changes, expunges, moves between the mailboxes and UIDVALIDITY changes
(a mailbox re-created). Between bursts the watcher syncs, with a full snapshot (the
fallback path, no CONDSTORE) or an incremental one (CHANGEDSINCE + VANISHED, sometimes a
superset as RFC 7162 allows). Whatever happened:

- replaying the events on the state the old checkpoint describes gives the server's state;
- the new checkpoint describes exactly the server's state;
- a UIDVALIDITY change yields exactly one ``mailboxReset`` and nothing else;
- event ids within one sync are distinct, and re-running a sync yields the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.sync.checkpoint import MailboxCheckpoint, MessageState
from chalicelib.sync.reconcile import MailboxSnapshot, apply_events, reconcile_mailbox
from chalicelib.sync.uidset import UidSet

FLAG_NAMES = ("\\Seen", "\\Flagged", "\\Answered", "$Work", "\\Recent")
flag_sets = st.frozensets(st.sampled_from(FLAG_NAMES), max_size=3)


@dataclass
class ModelMailbox:
    path: str
    uidvalidity: int = 1
    uidnext: int = 1
    modseq: int = 1
    messages: dict[int, tuple[frozenset[str], int]] = field(default_factory=dict)
    expunged: dict[int, int] = field(default_factory=dict)

    def _tick(self) -> int:
        self.modseq += 1
        return self.modseq

    def append(self, flags: frozenset[str]) -> None:
        self.messages[self.uidnext] = (flags, self._tick())
        self.uidnext += 1

    def pick(self, index: int) -> int | None:
        uids = sorted(self.messages)
        return uids[index % len(uids)] if uids else None

    def set_flags(self, index: int, flags: frozenset[str]) -> None:
        uid = self.pick(index)
        if uid is not None:
            self.messages[uid] = (flags, self._tick())

    def expunge(self, index: int) -> frozenset[str] | None:
        uid = self.pick(index)
        if uid is None:
            return None
        flags, _ = self.messages.pop(uid)
        self.expunged[uid] = self._tick()
        return flags

    def recreate(self) -> None:
        survivors = [flags for flags, _ in self.messages.values()]
        self.uidvalidity += 1
        self.uidnext, self.messages, self.expunged = 1, {}, {}
        for flags in survivors:
            self.append(flags)

    def states(self) -> dict[int, MessageState]:
        return {uid: MessageState(flags - {"\\Recent"}) for uid, (flags, _) in self.messages.items()}

    def full_snapshot(self) -> MailboxSnapshot:
        return MailboxSnapshot(self.path, self.uidvalidity, self.uidnext, self.modseq,
                               {uid: MessageState(f) for uid, (f, _) in self.messages.items()},
                               present=UidSet(self.messages), listings=self._listings(self.messages))

    def incremental_snapshot(self, since: int, superset: bool) -> MailboxSnapshot:
        changed = {uid: MessageState(f) for uid, (f, m) in self.messages.items() if m > since}
        vanished = UidSet(uid for uid, m in self.expunged.items() if m > since or superset)
        if superset:
            vanished = vanished | UidSet([self.uidnext + 5])
        return MailboxSnapshot(self.path, self.uidvalidity, self.uidnext, self.modseq, changed,
                               vanished=vanished, listings=self._listings(changed))

    @staticmethod
    def _listings(uids) -> dict[int, dict]:
        return {uid: {"subject": f"m{uid}"} for uid in uids}


operations = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(0, 1), flag_sets),
    st.tuples(st.just("flags"), st.integers(0, 1), st.integers(0, 50), flag_sets),
    st.tuples(st.just("expunge"), st.integers(0, 1), st.integers(0, 50)),
    st.tuples(st.just("move"), st.integers(0, 1), st.integers(0, 50)),
    st.tuples(st.just("recreate"), st.integers(0, 1)),
), max_size=12)


def apply(mailboxes: list[ModelMailbox], operation: tuple) -> None:
    kind, which, *args = operation
    box = mailboxes[which]
    if kind == "append":
        box.append(args[0])
    elif kind == "flags":
        box.set_flags(*args)
    elif kind == "expunge":
        box.expunge(*args)
    elif kind == "move":
        flags = box.expunge(*args)
        if flags is not None:
            mailboxes[1 - which].append(flags)
    else:
        box.recreate()


@settings(max_examples=300, deadline=None)
@given(initial=operations, bursts=st.lists(st.tuples(operations, st.booleans(), st.booleans()), max_size=6))
def test_replaying_events_on_the_old_state_gives_the_new_state(initial, bursts):
    mailboxes = [ModelMailbox("INBOX"), ModelMailbox("Archive")]
    for operation in initial:
        apply(mailboxes, operation)
    checkpoints: list[MailboxCheckpoint] = []
    for box in mailboxes:
        baseline = reconcile_mailbox("acct", None, box.full_snapshot())
        assert baseline.events == [] and baseline.checkpoint.states() == box.states()
        checkpoints.append(baseline.checkpoint)

    for burst, use_full, superset in bursts:
        for operation in burst:
            apply(mailboxes, operation)
        for index, box in enumerate(mailboxes):
            old = checkpoints[index]
            reset = old.uidvalidity != box.uidvalidity
            snapshot = (box.full_snapshot() if use_full or reset or old.highestmodseq is None
                        else box.incremental_snapshot(old.highestmodseq, superset))
            result = reconcile_mailbox("acct", old, snapshot)
            if reset:
                assert [e.event for e in result.events] == ["mailboxReset"]
            else:
                assert apply_events(old.states(), result.events) == box.states()
            assert result.checkpoint.states() == box.states()
            assert len({e.id for e in result.events}) == len(result.events)
            assert [e.id for e in reconcile_mailbox("acct", old, snapshot).events] == [e.id for e in result.events]
            assert result.checkpoint.revision == old.revision + (1 if result.changed else 0)
            checkpoints[index] = result.checkpoint
